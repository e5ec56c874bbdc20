//! The checks implemented in code: the one list of them. A catalog condition declared
//! `check: builtin` must be one of these, in its phase; the phases dispatch on the variant, so
//! the compiler sees every builtin handled.

use crate::model::Phase;

macro_rules! builtins {
    ($($variant:ident = $id:literal in $phase:ident),* $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Builtin {
            $($variant),*
        }

        impl Builtin {
            pub const ALL: &[Builtin] = &[$(Builtin::$variant),*];

            /// The condition id it judges.
            pub fn id(self) -> &'static str {
                match self {
                    $(Builtin::$variant => $id),*
                }
            }

            /// The phase it runs in.
            pub fn phase(self) -> Phase {
                match self {
                    $(Builtin::$variant => Phase::$phase),*
                }
            }
        }
    };
}

builtins! {
    HostQemu = "host.qemu" in Host,
    HostQemuDevices = "host.qemu-devices" in Host,
    HostResources = "host.resources" in Host,
    HostNix = "host.nix" in Host,
    VirtKvm = "virt.kvm" in Virt,
    VirtTun = "virt.tun" in Virt,
    VirtQemuStart = "virt.qemu-start" in Virt,
    IsoBuild = "iso.build" in Iso,
    IsoResolve = "iso.resolve" in Iso,
    IsoBootable = "iso.bootable" in Iso,
    IsoConsole = "iso.console" in Iso,
    BootConsole = "boot.console" in Boot,
    BootLogin = "boot.login" in Boot,
    BootAutologin = "boot.autologin" in Boot,
    ShellReady = "shell.ready" in Boot,
}

/// The boot-phase builtins: dialogues on the serial console, held live in the QEMU session and
/// read from the log in replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleDialogue {
    Console,
    Login,
    Autologin,
    ShellReady,
}

impl Builtin {
    /// The console dialogue this builtin is; `None` for host, virt and iso checks.
    pub fn dialogue(self) -> Option<ConsoleDialogue> {
        match self {
            Builtin::BootConsole => Some(ConsoleDialogue::Console),
            Builtin::BootLogin => Some(ConsoleDialogue::Login),
            Builtin::BootAutologin => Some(ConsoleDialogue::Autologin),
            Builtin::ShellReady => Some(ConsoleDialogue::ShellReady),
            Builtin::HostQemu
            | Builtin::HostQemuDevices
            | Builtin::HostResources
            | Builtin::HostNix
            | Builtin::VirtKvm
            | Builtin::VirtTun
            | Builtin::VirtQemuStart
            | Builtin::IsoBuild
            | Builtin::IsoResolve
            | Builtin::IsoBootable
            | Builtin::IsoConsole => None,
        }
    }

    pub fn from_id(id: &str) -> Option<Builtin> {
        Self::ALL.iter().copied().find(|b| b.id() == id)
    }

    /// The builtin a condition of `phase` named `id` declares, or what is wrong with it.
    pub fn resolve(id: &str, phase: Phase) -> Result<Builtin, String> {
        match Self::from_id(id) {
            Some(b) if b.phase() == phase => Ok(b),
            Some(b) => Err(format!(
                "the builtin check `{id}` runs in the {} phase, not {phase}",
                b.phase()
            )),
            None => Err(format!(
                "bootaudit has no builtin check `{id}` (builtins: {}); write a `probe` or `watch` check instead",
                Self::ALL.iter().map(|b| b.id()).collect::<Vec<_>>().join(", ")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_resolve_in_their_phase_only() {
        for b in Builtin::ALL {
            assert_eq!(Builtin::from_id(b.id()), Some(*b));
            assert_eq!(Builtin::resolve(b.id(), b.phase()), Ok(*b));
            let other = Phase::ALL.into_iter().find(|p| *p != b.phase()).unwrap();
            assert!(Builtin::resolve(b.id(), other).is_err());
            assert_eq!(b.dialogue().is_some(), b.phase() == Phase::Boot, "{b:?}");
        }
        let err = Builtin::resolve("host.frobnicator", Phase::Host).unwrap_err();
        assert!(err.contains("host.qemu") && err.contains("probe"), "{err}");
    }
}
