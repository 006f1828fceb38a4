#!/usr/bin/env python3
"""Writes an exitless bundle: a cpio "newc" archive holding a VM configuration and guest images.

    mkbundle.py OUT.cpio CONFIG.toml FILE...

CONFIG.toml is stored as `exitless.toml` (the name the hypervisor looks for); each FILE is
stored under its base name, or under NAME when given as `NAME=PATH`. The archive is loaded as
the initrd of the hypervisor (QEMU -initrd OUT.cpio); core/src/vm/bundle.rs reads it and
core/src/vm/config.rs documents the configuration format.

The archive is reproducible: entries in argument order (the configuration first), regular
files only, mode 0644, uid/gid 0, mtime 0, inode numbers counted from 1, then the TRAILER!!!
entry; no padding after it. No external cpio is used. OUT is written to a temporary file and
renamed, so a failed run never leaves a half-written bundle.

Refused with a message on stderr and exit status 1: a missing or unreadable FILE or CONFIG, a
file that is not a regular file, two files with the same name, an empty or invalid NAME, and
(with Python 3.11's tomllib) a configuration that does not parse as TOML or names a `kernel` or
`initrd` the bundle does not hold.

The module also serves scripts/mk-initramfs.sh: `NewcWriter` writes directories, symlinks and
device nodes too.
"""

import os
import stat
import sys
import tempfile

CONFIG_NAME = "exitless.toml"
TRAILER = "TRAILER!!!"


class NewcWriter:
    """Writes cpio newc (070701) entries to a binary file object, 4-byte aligned."""

    def __init__(self, out):
        self.out = out
        self.pos = 0
        self.ino = 1

    def _write(self, data):
        self.out.write(data)
        self.pos += len(data)

    def _pad(self):
        self._write(b"\0" * (-self.pos % 4))

    def entry(self, name, mode, data=b"", rdev=(0, 0), nlink=1):
        """One entry: NAME (str), MODE (type and permission bits), DATA (bytes)."""
        encoded = name.encode()
        fields = [
            self.ino if name != TRAILER else 0,
            mode,
            0,  # uid
            0,  # gid
            nlink,
            0,  # mtime
            len(data),
            0,  # devmajor
            0,  # devminor
            rdev[0],
            rdev[1],
            len(encoded) + 1,
            0,  # check (newc: always 0)
        ]
        self.ino += 1
        self._write(b"070701" + b"".join(b"%08X" % f for f in fields))
        self._write(encoded + b"\0")
        self._pad()
        self._write(data)
        self._pad()

    def file(self, name, data, perm=0o644):
        self.entry(name, stat.S_IFREG | perm, data)

    def directory(self, name, perm=0o755):
        self.entry(name, stat.S_IFDIR | perm, nlink=2)

    def symlink(self, name, target):
        self.entry(name, stat.S_IFLNK | 0o777, target.encode())

    def char_device(self, name, major, minor, perm=0o600):
        self.entry(name, stat.S_IFCHR | perm, rdev=(major, minor))

    def trailer(self):
        self.entry(TRAILER, 0)


def die(msg):
    print(f"mkbundle.py: error: {msg}", file=sys.stderr)
    sys.exit(1)


def read_file(path, what):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        die(f"{what} '{path}' does not exist: check the path (build it first?)")
    except OSError as e:
        die(f"cannot read {what} '{path}': {e.strerror}")
    if not stat.S_ISREG(st.st_mode):
        die(f"{what} '{path}' is not a regular file: name a file")
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        die(f"cannot read {what} '{path}': {e.strerror}")


def check_config(text, config_path, names):
    """Checks the TOML syntax and the files each [[vm]] names, when tomllib is available."""
    try:
        import tomllib
    except ImportError:
        return
    try:
        config = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        die(f"{config_path} is not valid TOML: {e}")
    for vm in config.get("vm", []):
        if not isinstance(vm, dict):
            continue
        for key in ("kernel", "initrd"):
            file = vm.get(key)
            if isinstance(file, str) and file.removeprefix("./") not in names:
                die(
                    f"VM '{vm.get('name', '?')}' in {config_path} names {key} '{file}', which "
                    f"is not among the files given ({', '.join(names[1:]) or 'none'}): add it"
                )


def main(argv):
    if len(argv) > 1 and argv[1] in ("-h", "--help"):
        print(__doc__)
        return
    if len(argv) < 3:
        die("usage: mkbundle.py OUT.cpio CONFIG.toml FILE... (FILE may be NAME=PATH; see --help)")
    out_path, config_path, specs = argv[1], argv[2], argv[3:]

    config = read_file(config_path, "configuration")
    entries = [(CONFIG_NAME, config)]
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = os.path.basename(spec), spec
        if not name or name in (".", "..", TRAILER) or "\0" in name or name.startswith("/"):
            die(f"'{spec}': '{name}' cannot name a bundle file: use NAME=PATH with a plain name")
        name = name.removeprefix("./")
        if any(name == n for n, _ in entries):
            die(f"'{spec}': the bundle already has a file named '{name}': rename with NAME=PATH")
        entries.append((name, read_file(path, "file")))
    check_config(config.decode("utf-8", "replace"), config_path, [n for n, _ in entries])

    out_dir = os.path.dirname(os.path.abspath(out_path))
    try:
        fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".mkbundle.")
    except OSError as e:
        die(f"cannot write into {out_dir}: {e.strerror}")
    try:
        with os.fdopen(fd, "wb") as f:
            w = NewcWriter(f)
            for name, data in entries:
                w.file(name, data)
            w.trailer()
        os.chmod(tmp, 0o644)
        os.replace(tmp, out_path)
    except BaseException:
        os.unlink(tmp)
        raise


if __name__ == "__main__":
    main(sys.argv)
