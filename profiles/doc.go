// Package profiles loads keel profiles: the one declarative YAML file (plus the
// files it includes) that says what goes into an image.
//
// Loading is strict. Unknown fields, wrong types, bad sizes, duplicate users,
// missing local files and the like are all reported, one *Error per problem,
// each naming the file, line, column and field path it is about, joined with
// errors.Join so a user fixes everything in one round:
//
//	profile.yaml:12:3: disk.slot_size: unknown field (known: size, esp, slot, data, squashfs, verity)
//	profile.yaml:14:9: disk.slot: "12Q" is not a size
//
// Callers branch on errors.As(err, new(*profiles.Error)) to tell a bad
// profile (exit code 2) from other failures. Stages after loading report
// problems with what a profile names (an unknown image, a slot too small for
// the root filesystem) through Profile.Errorf, which places them at the line
// the field was written on.
//
// A loaded Profile is complete: includes merged, defaults filled (see the
// Default* constants), relative paths made absolute and local files checked
// to exist and be readable. Sizes are in bytes (see Size for the units),
// modes always octal (see FileMode).
//
// The Go types in types.go are the schema: the YAML decoder, the defaults,
// the validation and the JSON Schema (see Schema) are all driven by them. Struct
// tags:
//
//	yaml:"name"      the field's name in the profile
//	doc:"..."        its description in the JSON Schema
//	enum:"a,b"       the only values accepted
//	required:"true"  the field must be present
//	keel:"path"      a local path: ${VAR} is expanded, and a relative path is
//	                 made absolute against the directory of the file it is in
//	keel:"ref"       an image reference: as a path for the local transports
//	                 (oci:, oci-archive:, docker-archive:, dir:), kept as
//	                 written otherwise
//
// # Versions
//
// A profile may say `keel: 1`; a missing `keel` field means version 1, the only
// version there is. A later version will be translated forward into these
// types on load rather than branched on by the rest of keel.
//
// # Includes
//
// `include` lists other profile files, relative to the including file, that
// are merged first, in order, and the including file last. Merging is by YAML
// structure: a scalar set later replaces an earlier one, mappings are merged
// key by key, and lists are appended (sources, users, services, modules...).
// kernel.file and kernel.image are alternatives: setting either one replaces
// both (and kernel.path) from earlier files. Each file is merged at most once,
// at its first inclusion; a file that includes itself, directly or not, is an
// error naming the chain. Setting a key to null (`hostname: ~`) unsets it.
//
// # Environment variables
//
// Only in path fields (kernel.file, sources[].dir, sources[].source, the local
// part of local image references, boot.loader, update.keys, include) ${NAME} is replaced by
// the environment variable NAME; an unset variable is an error. `$` not followed
// by `{` is kept as is. Other fields are never expanded, so a `$` in a password
// hash or a service command means itself.
package profiles
