#!/usr/bin/env python3
"""A naive pexpect prober of the pre-nixos conditions, the way the old harness worked: the
baseline of benches/overhead.sh (docs/benchmarks.md, "Audit overhead against a pexpect baseline").

usage: benches/pexpect_baseline.py ISO WORKDIR      (prints one JSON object on stdout)

QEMU as bootaudit boots it (TCG), but with the console on `-serial stdio` under pexpect. Waits
for the automatic login, takes over the shell (quiet wait, marker echo), runs each condition
with `sudo -n` per root command and time.sleep polling, stops at a kernel panic, and always
kills QEMU. Timeouts are the profile's, x3 for TCG.
"""
import json, os, re, sys, time
import pexpect

T0, T0_EPOCH = time.monotonic(), time.time()
now = lambda: round(time.monotonic() - T0, 3)
ISO, WORK = sys.argv[1], sys.argv[2]
TCG = 3
PANIC = rb"Kernel panic - not syncing"


class Log:  # pexpect's logfile_read: remembers when each read arrived
    def __init__(self):
        self.buf, self.chunks = b"", []
    def write(self, b):
        self.chunks.append((len(self.buf), now()))
        self.buf += b
    def flush(self):
        pass
    def arrival(self, pattern):
        i = self.buf.find(pattern)
        return None if i < 0 else [t for off, t in self.chunks if off <= i][-1]


class Panic(Exception):
    pass


def expect(pats, timeout):
    i = child.expect([PANIC] + pats, timeout=timeout)
    if i == 0:
        raise Panic((child.after + child.buffer.split(b"\n")[0]).decode(errors="replace").strip())
    return i - 1


n = 0
def run(cmd, timeout=30 * TCG):  # -> output text; markers are built by the shell, not echoed
    global n
    n += 1
    child.sendline(f"echo __B$(({n}))__; {cmd}; echo __E$(({n}))__ $?")
    expect([f"__B{n}__\r*\n".encode()], timeout)
    expect([f"__E{n}__ (\\d+)".encode()], timeout)
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "", child.before.decode(errors="replace"))


def poll(cmd, passes, fails, every, timeout):
    end = time.monotonic() + timeout
    while True:
        out = run(cmd)
        if any(re.search(p, out, re.M) for p in fails):
            return "fail", out.strip()
        if all(re.search(p, out, re.M) for p in passes):
            return "pass", out.strip()
        if time.monotonic() > end:
            return "fail", ("timeout: " if timeout else "no match: ") + out.strip()
        time.sleep(every)


verdicts, timing, current = {}, {}, [None, 0]
def judge(cid, fn, needs=()):
    t = now()
    current[:] = cid, t
    if any(verdicts.get(d, ("fail",))[0] != "pass" for d in needs):
        verdicts[cid] = ("skip", "needs " + " ".join(needs))
    else:
        try:
            verdicts[cid] = fn()
        except pexpect.TIMEOUT:
            verdicts[cid] = ("fail", "timeout")
    timing[cid] = (t, now())


disk = os.path.join(WORK, "disk0.img")
with open(disk, "wb") as f:
    f.truncate(8 << 30)
qemu = ["-name", "pexpect-baseline", "-machine", "pc,accel=tcg", "-m", "1536M", "-smp", "2",
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-drive", f"file={ISO},media=cdrom,readonly=on,if=ide,index=2,format=raw", "-boot", "order=d",
        "-drive", f"file={disk},if=none,id=disk0,format=raw,cache=unsafe",
        "-device", "virtio-blk-pci,drive=disk0", "-netdev", "user,id=net0",
        "-device", "virtio-net-pci,netdev=net0",
        "-object", "rng-random,id=rng0,filename=/dev/urandom", "-device", "virtio-rng-pci,rng=rng0",
        "-serial", "stdio"]
log = Log()
result = {"t0_epoch": T0_EPOCH, "t_login": None, "t_shell_ready": None, "t_qemu_start": now()}
child = pexpect.spawn("qemu-system-x86_64", qemu, timeout=30, maxread=65536)
child.logfile_read = log
panic_at = None
try:
    judge("boot.console", lambda: (expect([rb"(?s)."], 30 * TCG), ("pass", ""))[1])
    auto = rb"(\S+) \(automatic login\)"
    judge("boot.login", lambda: (expect([auto, rb"login: "], 90 * TCG), ("pass", child.after.decode()))[1],
          ["boot.console"])
    result["t_login"] = timing["boot.login"][1] if verdicts["boot.login"][0] == "pass" else None

    def autologin():
        if not child.after.endswith(b"(automatic login)"):
            expect([auto], 30 * TCG)
        user = child.match.group(1).decode()
        return "pass" if user == "nixos" else "fail", user
    judge("boot.autologin", autologin, ["boot.login"])

    def take_over():  # quiet for 1.5 s (at most 10 s of output), then a marker round trip
        end = time.monotonic() + 10
        while time.monotonic() < end and expect([pexpect.TIMEOUT, rb"(?s).+"], 1.5) != 0:
            pass
        child.sendline("echo READY-$((6*7))")
        expect([rb"READY-42"], 30 * TCG)
        return "pass", "READY-42"
    judge("shell.ready", take_over, ["boot.autologin"])
    result["t_shell_ready"] = round(timing["shell.ready"][1] - timing["shell.ready"][0], 3)

    judge("shell.root", lambda: poll("sudo -n id -u", [r"^0$"], [r"password is required|not in the sudoers"], 0, 0), ["shell.ready"])
    judge("storage.tools", lambda: poll(
        'm=; for t in disko findmnt lsblk wipefs; do command -v "$t" >/dev/null 2>&1 || m="$m $t"; done; echo "missing:$m"',
        [r"^missing:$"], [r"^missing: .+"], 0, 0), ["shell.ready"])
    judge("storage.status", lambda: poll("cat /run/pre-nixos/storage-status",
        [r"^STATE=applied\s*$", r"^DETAIL=auto-applied\s*$"], [r"^STATE=failed"], 3, 120 * TCG), ["shell.ready"])
    judge("storage.vg-main", lambda: poll("sudo -n vgs --noheadings -o vg_name",
        [r"^\s*main\s*$"], [], 0, 0), ["storage.status", "shell.root"])
    judge("storage.lv-slash", lambda: poll("sudo -n lvs --noheadings -o lv_name,vg_name",
        [r"^\s*slash\s+main\s*$"], [], 0, 0), ["storage.vg-main"])
    judge("net.lan-ipv4", lambda: poll("ip -4 -o addr show dev lan",
        [r"inet \d+\.\d+\.\d+\.\d+\S* .*dynamic"], [r"does not exist"], 2, 40 * TCG), ["shell.ready"])
    judge("unit.pre-nixos-inactive", lambda: poll("systemctl show -p ActiveState pre-nixos.service",
        [r"^ActiveState=inactive$"], [r"^ActiveState=failed$"], 3, 60 * TCG), ["storage.status"])
    announce = rb"LAN IPv4 address: \d+\.\d+\.\d+\.\d+"
    judge("console.lan-announce", lambda: ("pass", "") if re.search(announce, log.buf)
          or expect([announce, pexpect.TIMEOUT], 30 * TCG) == 0 else ("fail", "not seen"), ["net.lan-ipv4"])
except Panic as e:
    t = now()
    for cid in ["boot.console", "boot.login", "boot.autologin", "shell.ready", "shell.root", "storage.tools",
                "storage.status", "storage.vg-main", "storage.lv-slash", "net.lan-ipv4",
                "unit.pre-nixos-inactive", "console.lan-announce"]:
        if cid not in verdicts:
            verdicts[cid] = ("fail", "kernel panic: " + str(e))
            timing[cid] = (current[1] if cid == current[0] else t, t)
    panic_at = t
    try:  # keep the panic's tail for the log (not counted in t_end)
        child.expect([rb"---\[ end Kernel panic", pexpect.TIMEOUT], timeout=10)
    except pexpect.EOF:
        pass
except pexpect.EOF:
    verdicts["harness"] = ("fail", "QEMU exited")
finally:
    child.terminate(force=True)
    os.unlink(disk)
    open(os.path.join(WORK, "serial.raw"), "wb").write(log.buf)
    open(os.path.join(WORK, "serial.timing"), "w").writelines(f"{o} {int(t * 1000)}\n" for o, t in log.chunks)

result["t_end"] = max((b for a, b in timing.values()), default=now())
end_arrived = log.arrival(b"---[ end Kernel panic")
result["panic_end_delay"] = round(panic_at - end_arrived, 3) if panic_at and end_arrived else None
result["verdicts"] = {c: v[0] for c, v in verdicts.items()}
result["reasons"] = {c: v[1][:200] for c, v in verdicts.items()}
result["durations"] = {c: round(b - a, 3) for c, (a, b) in timing.items()}
result["qemu"] = " ".join(["qemu-system-x86_64"] + qemu)
print(json.dumps(result))
