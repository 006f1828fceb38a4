#!/usr/bin/env python3
"""corrupt-dtb.py IN OUT: writes a copy of the DTB IN whose first property under the PL011 node
names a string far outside the strings block. libfdt (and so QEMU's -dtb loading) never looks
at that property, so QEMU boots the blob; a careful reader must refuse it."""
import struct
import sys

blob = bytearray(open(sys.argv[1], "rb").read())
off_struct = struct.unpack(">I", blob[8:12])[0]
size_struct = struct.unpack(">I", blob[36:40])[0]
p, in_uart = off_struct, False
while p < off_struct + size_struct:
    token = struct.unpack(">I", blob[p:p + 4])[0]
    p += 4
    if token == 1:  # FDT_BEGIN_NODE
        end = blob.index(0, p)
        in_uart = blob[p:end].startswith(b"pl011")
        p = (end + 1 + 3) & ~3
    elif token == 3:  # FDT_PROP
        length = struct.unpack(">I", blob[p:p + 4])[0]
        if in_uart:
            blob[p + 4:p + 8] = struct.pack(">I", 0x7FFFFFF0)
            open(sys.argv[2], "wb").write(blob)
            sys.exit(0)
        p += 8 + ((length + 3) & ~3)
    elif token == 9:  # FDT_END
        break
sys.exit("corrupt-dtb.py: no pl011 node found")
