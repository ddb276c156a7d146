#!/usr/bin/env python3
"""macho.py FILE CPU DYLIB... - check that FILE is a 64-bit Mach-O executable for
macOS on CPU (arm64 or x86_64) that loads each DYLIB, and that every symbol it
imports names one of the dylibs it loads (two-level namespace: no symbol left to
a flat lookup at run time); arm64 also needs a code signature, or macOS will not
start it. Prints one line saying what it found; exits 1 naming what is wrong.

What `make check-macos` can check without a Mac: the headers and load commands
dyld reads (mach-o/loader.h, mach-o/nlist.h), not that dyld accepts them.
"""
import struct
import sys

MH_MAGIC_64 = 0xFEEDFACF
MH_EXECUTE = 2
CPUS = {"arm64": 0x0100000C, "x86_64": 0x01000007}
LC_SYMTAB, LC_LOAD_DYLIB, LC_CODE_SIGNATURE, LC_BUILD_VERSION = 0x2, 0xC, 0x1D, 0x32
LC_REQ_DYLD = 0x80000000
PLATFORM_MACOS = 1
N_STAB, N_TYPE, N_EXT, N_UNDF = 0xE0, 0x0E, 0x01, 0x0


class Bad(Exception):
    """What makes the file unfit to run on a Mac."""


def load_commands(data, ncmds):
    """(cmd, offset of the command) for each load command after the header."""
    off = 32
    for _ in range(ncmds):
        cmd, size = struct.unpack_from("<II", data, off)
        yield cmd & ~LC_REQ_DYLD, off
        off += size


def cstring(data, off):
    return data[off:data.index(b"\0", off)].decode()


def version(v):
    return "%d.%d" % (v >> 16, (v >> 8) & 0xFF)


def imports(data, symoff, nsyms, stroff):
    """(name, library ordinal) of each undefined external symbol."""
    for i in range(nsyms):
        strx, ntype, _, desc, _ = struct.unpack_from("<IBBHQ", data, symoff + 16 * i)
        if not ntype & N_STAB and ntype & N_TYPE == N_UNDF and ntype & N_EXT:
            yield cstring(data, stroff + strx), desc >> 8


def header(data, cpu):
    """The number of load commands, once the header says: executable for cpu."""
    magic, cputype, _, filetype, ncmds = struct.unpack_from("<IiiII", data, 0)
    if magic != MH_MAGIC_64:
        raise Bad("not a 64-bit Mach-O file (magic %#x)" % magic)
    if cputype != CPUS[cpu] or filetype != MH_EXECUTE:
        raise Bad("cputype %#x filetype %d, not an %s executable" % (cputype, filetype, cpu))
    return ncmds


def read_commands(data, ncmds):
    """The dylibs loaded in order, the minimum macOS, whether signed, LC_SYMTAB."""
    dylibs, minos, signed, symtab = [], None, False, None
    for cmd, off in load_commands(data, ncmds):
        if cmd == LC_LOAD_DYLIB:
            dylibs.append(cstring(data, off + struct.unpack_from("<I", data, off + 8)[0]))
        elif cmd == LC_BUILD_VERSION:
            platform, minos = struct.unpack_from("<II", data, off + 8)
            if platform != PLATFORM_MACOS:
                raise Bad("built for platform %d, not macOS" % platform)
        elif cmd == LC_CODE_SIGNATURE:
            signed = True
        elif cmd == LC_SYMTAB:
            symtab = struct.unpack_from("<III", data, off + 8)
    if minos is None or symtab is None:
        raise Bad("no LC_BUILD_VERSION or no LC_SYMTAB")
    return dylibs, minos, signed, symtab


def check(path, cpu, want):
    data = open(path, "rb").read()
    dylibs, minos, signed, symtab = read_commands(data, header(data, cpu))
    missing = [d for d in want if d not in dylibs]
    if missing:
        raise Bad("loads %s, not %s" % (", ".join(dylibs), ", ".join(missing)))
    if cpu == "arm64" and not signed:
        raise Bad("no code signature: macOS on arm64 refuses to run it")
    count = dict.fromkeys(dylibs, 0)
    for name, ordinal in imports(data, *symtab):
        if not 1 <= ordinal <= len(dylibs):
            raise Bad("%s is imported with library ordinal %d, not from a dylib" % (name, ordinal))
        count[dylibs[ordinal - 1]] += 1
    unused = [d for d in want if not count[d]]
    if unused:
        raise Bad("imports nothing from %s" % ", ".join(unused))
    return "Mach-O %s executable, macOS %s+, %s; imports %s" % (
        cpu, version(minos), "signed" if signed else "unsigned",
        ", ".join("%d from %s" % (n, d) for d, n in count.items()))

def main():
    if len(sys.argv) < 3 or sys.argv[2] not in CPUS:
        sys.exit(__doc__.split("\n\n")[0])
    path = sys.argv[1]
    try:
        print("%s: %s" % (path, check(path, sys.argv[2], sys.argv[3:])))
    except (Bad, OSError, struct.error, ValueError) as e:
        print("netreload: error: %s: %s" % (path, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
