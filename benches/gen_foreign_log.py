#!/usr/bin/env python3
"""Write a synthetic foreign serial log of about SIZE_MB megabytes for the replay benchmark.

What another harness (pexpect) leaves of a long, healthy pre-nixos run: an ISOLINUX menu drawn
with escape codes, kernel and systemd lines with `\\r\\r\\n`, the automatic login, then hours of
polling with a coloured prompt (the status file still empty, no address yet) under a flood of
console lines, and at the end the answers that make every condition pass. Deterministic.

usage: gen_foreign_log.py SIZE_MB OUT
"""
import sys

size = int(float(sys.argv[1]) * 1024 * 1024)
out = open(sys.argv[2], "wb")

P = b"\x1b[1;32m[nixos@nixos:~]$\x1b[0m "
R = b"\x1b[1;31m[root@nixos:~]#\x1b[0m "
head = (
    b"\x1b[2J\x1b[1;1H\x1b)0\x0e lqqqqqqqqqqqqqqqqqqqqqqqqqqqqk\x0f\r\n"
    b"\x1b[2;1H\x1b[7m NixOS pre-nixos (console=ttyS0,115200n8) \x1b[0m\r\n"
    b"Booting in 5 seconds...\rBooting in 4 seconds...\r\n"
    + b"".join(b"[    %d.%06d] kernel: init step %d\r\r\n" % (i // 100, i * 7919 % 10**6, i) for i in range(400))
    + b"[  \x1b[0;32mOK\x1b[0m  ] Started \x1b[0;1;39mpre-nixos.service\x1b[0m.\r\r\n"
    b"\r\r\n<<< Welcome to NixOS 24.05 (x86_64) - ttyS0 >>>\r\r\n\r\n"
    b"nixos login: nixos (automatic login)\r\r\n\r\n"
)
out.write(head)
written = len(head)

poll = (
    P + b"cat /run/pre-nixos/storage-status 2>/dev/null || true\r\n"
    + P + b"ip -o -4 addr show dev lan\r\n"
    + b"".join(b"[  %d.%06d] random: flood line %d of a chatty service, nothing to see here\r\r\n" % (100 + i, i * 104729 % 10**6, i) for i in range(40))
    + b"         Starting \x1b[0;1;39mSomething\x1b[0m...\r\r\n"
)
tail = (
    P + b"cat /run/pre-nixos/storage-status\r\nSTATE=applied\r\nDETAIL=auto-applied\r\n"
    + P + b"sudo -i\r\n"
    + R + b"id -u\r\n\x1b[0m0\r\n"
    + R + b"vgs --noheadings -o vg_name\r\n  main\r\n"
    + R + b"lvs --noheadings -o lv_name,vg_name\r\n  slash main\r\n"
    + R + b"ip -o -4 addr show dev lan\r\n2: lan    inet 10.0.2.15/24 brd 10.0.2.255 scope global dynamic lan\\       valid_lft 86000sec\r\n"
    + b"[ 9999.000001] systemd[1]: pre-nixos.service: Deactivated successfully.\r\r\n"
    + R + b"systemctl is-active pre-nixos\r\ninactive\r\n"
    + b"LAN IPv4 address: 10.0.2.15\r\n"
    + R
)
block = poll * 64
while written + len(block) + len(tail) < size:
    out.write(block)
    written += len(block)
while written + len(poll) + len(tail) < size:
    out.write(poll)
    written += len(poll)
out.write(tail)
out.close()
