//! The checks implemented in code: the one list of them. A catalog condition declares
//! `check: builtin` and `builtin: KIND` with one of these kinds, in the kind's phase; the
//! condition's id is the catalog's to choose. The phases dispatch on the variant, so the
//! compiler sees every builtin handled.

use crate::model::Phase;

macro_rules! builtins {
    ($($variant:ident = $kind:literal in $phase:ident),* $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Builtin {
            $($variant),*
        }

        impl Builtin {
            pub const ALL: &[Builtin] = &[$(Builtin::$variant),*];

            /// The kind's name in a catalog (`builtin: login-prompt`).
            pub fn kind(self) -> &'static str {
                match self {
                    $(Builtin::$variant => $kind),*
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
    HostQemu = "qemu" in Host,
    HostQemuDevices = "qemu-devices" in Host,
    HostResources = "resources" in Host,
    HostNix = "nix" in Host,
    VirtKvm = "kvm" in Virt,
    VirtTun = "tun" in Virt,
    VirtQemuStart = "qemu-start" in Virt,
    IsoBuild = "iso-build" in Iso,
    IsoResolve = "iso-resolve" in Iso,
    IsoBootable = "iso-bootable" in Iso,
    IsoConsole = "iso-console" in Iso,
    BootConsole = "console-output" in Boot,
    BootLogin = "login-prompt" in Boot,
    BootAutologin = "login" in Boot,
    ShellReady = "shell" in Boot,
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

    pub fn from_kind(kind: &str) -> Option<Builtin> {
        Self::ALL.iter().copied().find(|b| b.kind() == kind)
    }

    /// The builtin of kind `kind` for a condition of `phase`, or what is wrong with it.
    pub fn resolve(kind: &str, phase: Phase) -> Result<Builtin, String> {
        match Self::from_kind(kind) {
            Some(b) if b.phase() == phase => Ok(b),
            Some(b) => Err(format!(
                "the builtin check `{kind}` runs in the {} phase, not {phase}",
                b.phase()
            )),
            None => Err(format!(
                "bootaudit has no builtin check `{kind}` (builtins of the {phase} phase: {}); write a `probe` or `watch` check instead",
                Self::ALL.iter().filter(|b| b.phase() == phase).map(|b| b.kind()).collect::<Vec<_>>().join(", ")
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
            assert_eq!(Builtin::from_kind(b.kind()), Some(*b));
            assert_eq!(Builtin::resolve(b.kind(), b.phase()), Ok(*b));
            let other = Phase::ALL.into_iter().find(|p| *p != b.phase()).unwrap();
            assert!(Builtin::resolve(b.kind(), other).is_err());
            assert_eq!(b.dialogue().is_some(), b.phase() == Phase::Boot, "{b:?}");
        }
        let err = Builtin::resolve("frobnicator", Phase::Host).unwrap_err();
        assert!(
            err.contains("qemu-devices") && err.contains("probe"),
            "{err}"
        );
        assert!(
            !err.contains("login-prompt"),
            "only the phase's kinds: {err}"
        );
    }
}
