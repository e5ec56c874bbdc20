//! The QEMU command line, built from the profile's machine. Pure: unit-tested without a VM.

use super::firmware::UefiFiles;
use crate::config::contract::ConsolePort;
use crate::config::profile::{Machine, Network};
use crate::engine::AccelChoice;
use std::path::{Path, PathBuf};

/// A boot of a kernel and initrd QEMU loads itself (the boot loader does not run).
#[derive(Debug, Clone)]
pub struct DirectKernel {
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
}

/// Everything a launch needs besides the profile's machine.
#[derive(Debug, Clone)]
pub struct Launch<'a> {
    pub machine: &'a Machine,
    pub accel: AccelChoice,
    pub iso: Option<&'a Path>,
    /// Blank disk images, one per profile disk, already created.
    pub disks: Vec<PathBuf>,
    /// Unix socket the harness listens on for the serial console (QEMU connects to it).
    pub serial_socket: Option<&'a Path>,
    /// Unix socket the harness listens on for QMP (QEMU connects to it).
    pub qmp_socket: &'a Path,
    /// Start with the CPUs stopped (-S).
    pub paused: bool,
    /// Tap interface name, for tap networking.
    pub tap_ifname: Option<&'a str>,
    /// Where the guest's console is: the serial socket is wired to that port.
    pub console_port: ConsolePort,
    /// UEFI firmware (None: SeaBIOS).
    pub uefi: Option<&'a UefiFiles>,
    pub direct: Option<&'a DirectKernel>,
}

/// QEMU option values separate key=value pairs with commas; a literal comma is doubled.
fn escape(path: &Path) -> String {
    path.to_string_lossy().replace(',', ",,")
}

/// A user-networking forward as QEMU wants it, always bound to loopback.
pub fn hostfwd(spec: &str) -> Result<String, String> {
    // Accept `tcp:HOSTPORT-:GUESTPORT` (or udp); refuse an explicit host address other than
    // loopback so a profile can never expose the guest beyond this machine.
    let (proto, rest) = spec
        .split_once(':')
        .ok_or_else(|| format!("forward `{spec}`: write tcp:HOSTPORT-:GUESTPORT"))?;
    if proto != "tcp" && proto != "udp" {
        return Err(format!("forward `{spec}`: protocol must be tcp or udp"));
    }
    let (host, guest) = rest
        .split_once('-')
        .ok_or_else(|| format!("forward `{spec}`: write tcp:HOSTPORT-:GUESTPORT"))?;
    let host_port = match host.rsplit_once(':') {
        Some(("127.0.0.1", port)) | Some(("", port)) => port,
        Some((addr, _)) => {
            return Err(format!(
                "forward `{spec}`: host address {addr} refused; forwards bind to 127.0.0.1 only"
            ))
        }
        None => host,
    };
    let guest_port = guest.trim_start_matches(':');
    for p in [host_port, guest_port] {
        p.parse::<u16>()
            .map_err(|_| format!("forward `{spec}`: `{p}` is not a port"))?;
    }
    Ok(format!("{proto}:127.0.0.1:{host_port}-:{guest_port}"))
}

pub fn build(launch: &Launch<'_>) -> Result<Vec<String>, String> {
    let m = launch.machine;
    let mut a: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
    push(&["-name", "bootaudit"]);
    push(&[
        "-machine",
        &format!("{},accel={}", m.machine_type, launch.accel.as_str()),
    ]);
    push(&["-m", &format!("{}M", m.memory.mib())]);
    push(&["-smp", &m.cpus.to_string()]);
    push(&[
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
    ]);
    if let Some(uefi) = launch.uefi {
        push(&[
            "-drive",
            &format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={}",
                escape(&uefi.code)
            ),
        ]);
        push(&[
            "-drive",
            &format!("if=pflash,format=raw,unit=1,file={}", escape(&uefi.vars)),
        ]);
    }
    if let Some(d) = launch.direct {
        push(&["-kernel", &d.kernel.to_string_lossy()]);
        if let Some(initrd) = &d.initrd {
            push(&["-initrd", &initrd.to_string_lossy()]);
        }
        push(&["-append", &d.cmdline]);
    }
    if let Some(iso) = launch.iso {
        push(&[
            "-drive",
            &format!(
                "file={},media=cdrom,readonly=on,if=ide,index=2,format=raw",
                escape(iso)
            ),
        ]);
        push(&["-boot", "order=d"]);
    }
    for (i, (disk, spec)) in launch.disks.iter().zip(&m.disks).enumerate() {
        push(&[
            "-drive",
            &format!(
                "file={},if=none,id=disk{i},format=raw,cache=unsafe",
                escape(disk)
            ),
        ]);
        push(&["-device", &format!("{},drive=disk{i}", spec.device)]);
    }
    match m.nic.network {
        Network::User => {
            let mut netdev = "user,id=net0".to_string();
            for f in &m.nic.forwards {
                netdev.push_str(&format!(",hostfwd={}", hostfwd(f)?));
            }
            push(&["-netdev", &netdev]);
        }
        Network::Tap => {
            let ifname = launch.tap_ifname.unwrap_or("bootaudit0");
            push(&[
                "-netdev",
                &format!("tap,id=net0,ifname={ifname},script=no,downscript=no"),
            ]);
        }
    }
    push(&["-device", &format!("{},netdev=net0", m.nic.device)]);
    if let Some(rng) = &m.rng {
        push(&["-object", "rng-random,id=rng0,filename=/dev/urandom"]);
        push(&["-device", &format!("{rng},rng=rng0")]);
    }
    match launch.serial_socket {
        Some(sock) => {
            push(&[
                "-chardev",
                &format!("socket,id=serial0,path={},server=off", escape(sock)),
            ]);
            match launch.console_port {
                // ttyS<n> is the n-th UART: the ones before it exist but lead nowhere.
                ConsolePort::Serial(n) => {
                    for _ in 0..n {
                        push(&["-serial", "null"]);
                    }
                    push(&["-serial", "chardev:serial0"]);
                }
                ConsolePort::Virtio => {
                    push(&["-serial", "none"]);
                    push(&["-device", "virtio-serial-pci,id=vserial0"]);
                    push(&["-device", "virtconsole,chardev=serial0"]);
                }
            }
        }
        None => push(&["-serial", "none"]),
    }
    push(&[
        "-chardev",
        &format!(
            "socket,id=qmp0,path={},server=off",
            escape(launch.qmp_socket)
        ),
    ]);
    push(&["-mon", "chardev=qmp0,mode=control"]);
    if launch.paused {
        push(&["-S"]);
    }
    a.extend(m.extra_args.iter().cloned());
    Ok(a)
}

/// The devices a machine needs QEMU to offer, its console port's included.
pub fn required_devices(m: &Machine, port: &ConsolePort) -> Vec<String> {
    let mut d: Vec<String> = m.disks.iter().map(|d| d.device.clone()).collect();
    d.push(m.nic.device.clone());
    d.extend(m.rng.clone());
    if *port == ConsolePort::Virtio {
        d.extend(["virtio-serial-pci".to_string(), "virtconsole".to_string()]);
    }
    d.sort();
    d.dedup();
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::profile::{Disk, Nic};
    use crate::config::units::Size;

    fn machine() -> Machine {
        Machine {
            qemu: "qemu-system-x86_64".into(),
            machine_type: "pc".into(),
            memory: Size(1536 << 20),
            cpus: 2,
            disks: vec![Disk {
                size: Size(8 << 30),
                device: "virtio-blk-pci".into(),
            }],
            nic: Nic {
                device: "virtio-net-pci".into(),
                network: Network::User,
                forwards: vec!["tcp:2222-:22".into()],
            },
            rng: Some("virtio-rng-pci".into()),
            extra_args: vec![],
            firmware: crate::config::profile::Firmware::Bios,
            uefi_code: None,
            uefi_vars: None,
        }
    }

    #[test]
    fn builds_profile_machine() {
        let m = machine();
        let iso = PathBuf::from("/images/a,b.iso");
        let launch = Launch {
            machine: &m,
            accel: AccelChoice::Tcg,
            iso: Some(&iso),
            disks: vec![PathBuf::from("/tmp/x/disk0.img")],
            serial_socket: Some(Path::new("/tmp/x/serial.sock")),
            qmp_socket: Path::new("/tmp/x/qmp.sock"),
            paused: false,
            tap_ifname: None,
            console_port: ConsolePort::Serial(0),
            uefi: None,
            direct: None,
        };
        let args = build(&launch).unwrap().join(" ");
        assert!(args.contains("-machine pc,accel=tcg"), "{args}");
        assert!(args.contains("-m 1536M -smp 2"), "{args}");
        assert!(args.contains("file=/images/a,,b.iso,media=cdrom"), "{args}");
        assert!(
            args.contains("-device virtio-blk-pci,drive=disk0"),
            "{args}"
        );
        assert!(args.contains("hostfwd=tcp:127.0.0.1:2222-:22"), "{args}");
        assert!(args.contains("-device virtio-rng-pci,rng=rng0"), "{args}");
        assert!(
            args.contains("path=/tmp/x/serial.sock,server=off"),
            "{args}"
        );
        assert!(args.contains("-no-reboot"), "{args}");
        assert!(!args.contains(" -S"), "{args}");
        assert!(
            !args.contains("pflash") && !args.contains("-kernel"),
            "{args}"
        );
    }

    #[test]
    fn wires_the_console_port_the_firmware_and_a_direct_kernel() {
        let m = machine();
        let uefi = UefiFiles {
            code: PathBuf::from("/usr/share/OVMF/OVMF_CODE_4M.fd"),
            vars: PathBuf::from("/tmp/x/uefi-vars.fd"),
        };
        let direct = DirectKernel {
            kernel: PathBuf::from("/tmp/x/vmlinuz"),
            initrd: Some(PathBuf::from("/tmp/x/initrd")),
            cmdline: "boot=live console=ttyS1,115200".into(),
        };
        let launch = |port| Launch {
            machine: &m,
            accel: AccelChoice::Tcg,
            iso: None,
            disks: vec![],
            serial_socket: Some(Path::new("/tmp/x/serial.sock")),
            qmp_socket: Path::new("/tmp/x/qmp.sock"),
            paused: false,
            tap_ifname: None,
            console_port: port,
            uefi: Some(&uefi),
            direct: Some(&direct),
        };
        let a = build(&launch(ConsolePort::Serial(1))).unwrap();
        let joined = a.join(" ");
        assert!(
            joined.contains("-serial null -serial chardev:serial0"),
            "{joined}"
        );
        assert!(
            joined.contains(
                "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd"
            ),
            "{joined}"
        );
        assert!(
            joined.contains("if=pflash,format=raw,unit=1,file=/tmp/x/uefi-vars.fd"),
            "{joined}"
        );
        let append = a.iter().position(|x| x == "-append").unwrap();
        assert_eq!(
            a[append + 1],
            "boot=live console=ttyS1,115200",
            "one argument"
        );
        assert!(
            joined.contains("-kernel /tmp/x/vmlinuz -initrd /tmp/x/initrd"),
            "{joined}"
        );
        let hvc = build(&launch(ConsolePort::Virtio)).unwrap().join(" ");
        assert!(hvc.contains("-serial none -device virtio-serial-pci,id=vserial0 -device virtconsole,chardev=serial0"), "{hvc}");
    }

    #[test]
    fn forwards_only_on_loopback() {
        assert_eq!(hostfwd("tcp:2222-:22").unwrap(), "tcp:127.0.0.1:2222-:22");
        assert_eq!(
            hostfwd("tcp:127.0.0.1:80-:8080").unwrap(),
            "tcp:127.0.0.1:80-:8080"
        );
        assert!(hostfwd("tcp:0.0.0.0:2222-:22")
            .unwrap_err()
            .contains("127.0.0.1 only"));
        assert!(hostfwd("tcp:x-:22").is_err());
    }

    #[test]
    fn lists_required_devices() {
        assert_eq!(
            required_devices(&machine(), &ConsolePort::Serial(0)),
            ["virtio-blk-pci", "virtio-net-pci", "virtio-rng-pci"]
        );
        assert!(
            required_devices(&machine(), &ConsolePort::Virtio).contains(&"virtconsole".to_string())
        );
    }
}
