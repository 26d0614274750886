package publish

import "testing"

func TestCovers(t *testing.T) {
	tests := []struct {
		name, filter, prefix string
		want                 bool
	}{
		{"exact wildcard", "inlet.events.>", "inlet.events", true},
		{"everything", ">", "inlet.events", true},
		{"wider", "inlet.>", "inlet.events", true},
		{"token wildcard", "inlet.*.>", "inlet.events", true},
		{"one level only", "inlet.events.*", "inlet.events", false},
		{"prefix itself", "inlet.events", "inlet.events", false},
		{"other prefix", "other.events.>", "inlet.events", false},
		{"narrower", "inlet.events.github.>", "inlet.events", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := covers(tt.filter, tt.prefix); got != tt.want {
				t.Errorf("covers(%q, %q) = %v, want %v", tt.filter, tt.prefix, got, tt.want)
			}
		})
	}
}
