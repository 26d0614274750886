package gateway

import (
	"runtime/debug"
	"sync"
)

// Version is inlet's version as the build recorded it: the module version
// of a released build ("v1.2.3"), else the commit it was built from
// ("a1b2c3d4e5f6", with "-dirty" for uncommitted changes), else "dev".
var Version = sync.OnceValue(func() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return "dev"
	}
	return rev[:min(12, len(rev))] + dirty
})
