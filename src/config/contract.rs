//! The console contract of an image, as the profile states it: which port the console is on,
//! how a shell is obtained (automatic login, a password login, or none), how root is reached,
//! what boots (an entry of the boot menu, through the menu or directly), and the prompts the
//! dialogues wait for. Read as text with `{var}` placeholders (so a user adapts a profile
//! through its vars or `--var`), resolved once into typed values at load time.

use super::pattern::PatternSrc;
use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `console:` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSrc {
    /// `ttyS0` (default) … `ttyS3`, or `hvc0` (virtio-console).
    pub port: Option<String>,
    #[serde(default)]
    pub login: LoginSrc,
    #[serde(default)]
    pub root: RootSrc,
    #[serde(default)]
    pub prompts: PromptsSrc,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginSrc {
    /// `autologin` (default), `password` or `none`.
    pub mode: Option<String>,
    pub user: Option<String>,
    pub password: Option<SecretSrc>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootSrc {
    /// `sudo` (default), `doas`, `su` or `none`.
    pub via: Option<String>,
    /// For `su`: root's password.
    pub password: Option<SecretSrc>,
}

/// Where a password comes from: exactly one of the three.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSrc {
    pub env: Option<String>,
    pub file: Option<String>,
    /// Only for test images: the password is in the profile.
    #[serde(default, deserialize_with = "super::scalar::optional_text")]
    pub literal: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptsSrc {
    pub login: Option<PatternSrc>,
    pub autologin: Option<PatternSrc>,
    pub password: Option<PatternSrc>,
    pub login_incorrect: Option<PatternSrc>,
    pub shell: Option<PatternSrc>,
}

/// `boot:` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootSrc {
    /// `default`, or a regex matched against the boot entries' labels.
    pub entry: Option<String>,
    /// `menu` (default): the boot loader runs, and the harness picks the entry in its menu;
    /// `direct`: the entry's kernel, initrd and command line are booted by QEMU itself.
    pub mode: Option<String>,
    /// Added to the kernel command line in direct mode.
    #[serde(default)]
    pub append: String,
    /// `every-entry` (default) or `booted-entry`: which entries iso.console requires to send
    /// the console to the port.
    pub iso_console: Option<String>,
}

/// The resolved console contract.
#[derive(Debug, Clone)]
pub struct Contract {
    pub port: ConsolePort,
    pub login: Login,
    pub root: Escalation,
    pub prompts: Prompts,
    pub boot: BootChoice,
}

impl Contract {
    /// Can every password the contract needs be read? (Before a boot: a missing variable is a
    /// configuration error, not something to find out at the login prompt.)
    pub fn check_secrets(&self) -> Result<(), String> {
        if let Login::Password { password, .. } = &self.login {
            password
                .reveal()
                .map(drop)
                .map_err(|e| format!("console.login.password: {e}"))?;
        }
        if let Some(p) = self.root.password() {
            p.reveal()
                .map(drop)
                .map_err(|e| format!("console.root.password: {e}"))?;
        }
        Ok(())
    }

    /// Password files named relative to the profile are read from the profile's folder.
    pub fn relative_to(&mut self, dir: &std::path::Path) {
        let fix = |s: &mut Secret| {
            if let Secret::File(p) = s {
                if p.is_relative() {
                    *p = dir.join(&*p);
                }
            }
        };
        if let Login::Password { password, .. } = &mut self.login {
            fix(password);
        }
        if let Escalation::Su { password } = &mut self.root {
            fix(password);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsolePort {
    /// The n-th 16550 UART (`ttyS<n>`).
    Serial(u8),
    /// The first virtio console (`hvc0`).
    Virtio,
}

impl ConsolePort {
    /// The guest's device name (`ttyS0`, `hvc0`): what `console=` must name.
    pub fn device(&self) -> String {
        match self {
            ConsolePort::Serial(n) => format!("ttyS{n}"),
            ConsolePort::Virtio => "hvc0".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// The getty logs `user` in by itself.
    Automatic { user: String },
    /// The harness types the user name and password at the getty's prompts.
    Password { user: String, password: Secret },
    /// A shell is on the console already.
    None,
}

impl Login {
    pub fn user(&self) -> Option<&str> {
        match self {
            Login::Automatic { user } | Login::Password { user, .. } => Some(user),
            Login::None => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Escalation {
    /// `sudo -n`: never prompts.
    Sudo,
    /// `doas -n`: never prompts.
    Doas,
    /// `su - root -c`, answering its password prompt.
    Su { password: Secret },
    /// The login is root.
    None,
}

impl Escalation {
    /// The command line that runs `command` as root.
    pub fn wrap(&self, command: &str) -> String {
        let q = bootaudit_console::shell_quote(command);
        match self {
            Escalation::Sudo => format!("sudo -n sh -c {q}"),
            Escalation::Doas => format!("doas -n sh -c {q}"),
            // su reads the password from the terminal; the command's own stdin stays closed.
            Escalation::Su { .. } => {
                let inner =
                    bootaudit_console::shell_quote(&format!("{{ {command} ; }} </dev/null"));
                format!("su - root -c {inner}")
            }
            Escalation::None => command.to_string(),
        }
    }

    /// The password to answer the escalation's prompt with, if it asks for one.
    pub fn password(&self) -> Option<&Secret> {
        match self {
            Escalation::Su { password } => Some(password),
            _ => None,
        }
    }

    /// Does the escalation need the terminal (to read a password)?
    pub fn needs_terminal(&self) -> bool {
        matches!(self, Escalation::Su { .. })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Escalation::Sudo => "sudo",
            Escalation::Doas => "doas",
            Escalation::Su { .. } => "su",
            Escalation::None => "none",
        }
    }
}

/// A password, and where it comes from. Its value is read only when a boot needs it and is
/// never printed: `Debug` shows the source.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Env(String),
    File(PathBuf),
    Literal(String),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Env(v) => write!(f, "Secret(env {v})"),
            Secret::File(p) => write!(f, "Secret(file {})", p.display()),
            Secret::Literal(_) => write!(f, "Secret(literal)"),
        }
    }
}

impl Secret {
    /// Where it comes from, for messages.
    pub fn source(&self) -> String {
        match self {
            Secret::Env(v) => format!("the environment variable {v}"),
            Secret::File(p) => format!("the file {}", p.display()),
            Secret::Literal(_) => "the profile".into(),
        }
    }

    /// The password itself (a file's first line), or what to do.
    pub fn reveal(&self) -> Result<String, String> {
        let value = match self {
            Secret::Env(v) => std::env::var(v).map_err(|_| {
                format!("the password comes from the environment variable {v}, which is not set — export {v}=… before the run")
            })?,
            Secret::File(p) => std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read the password file {}: {e}", p.display()))?
                .lines()
                .next()
                .unwrap_or("")
                .to_string(),
            Secret::Literal(s) => s.clone(),
        };
        if value.is_empty() {
            return Err(format!("the password from {} is empty", self.source()));
        }
        // Typed at a prompt: a newline would end it early and send the rest as shell input.
        if value.chars().any(char::is_control) {
            return Err(format!(
                "the password from {} holds a control character (a newline, a tab): a console password cannot",
                self.source()
            ));
        }
        Ok(value)
    }
}

/// The patterns the console dialogues wait for. Defaults fit agetty, login(1), su, sudo, doas
/// and POSIX shells; a profile overrides any of them.
#[derive(Debug, Clone)]
pub struct Prompts {
    pub login: Regex,
    /// Group 1 is the user.
    pub autologin: Regex,
    pub password: Regex,
    pub login_incorrect: Regex,
    /// A shell waiting for input, at the end of what the console shows.
    pub shell: Regex,
}

pub const DEFAULT_LOGIN_PROMPT: &str = r"(?m)\S*\s?login: ?";
pub const DEFAULT_AUTOLOGIN: &str = r"(\S+) \(automatic login\)";
pub const DEFAULT_PASSWORD_PROMPT: &str =
    r"(?m)(\[sudo\] password for [^:\n]*:|^doas \([^)\n]*\) password:|(?:^|\s)[Pp]assword: ?$)";
pub const DEFAULT_LOGIN_INCORRECT: &str = r"(?m)(Login incorrect|su: (Authentication failure|Permission denied|Sorry|incorrect password)|doas: Authentication failed).*";
pub const DEFAULT_SHELL_PROMPT: &str = r"[$#%>] ?\z";

#[derive(Debug, Clone)]
pub enum EntryChoice {
    /// What the boot loader boots without a key press.
    Default,
    /// The first entry whose label matches.
    Label(Regex),
}

impl PartialEq for EntryChoice {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (EntryChoice::Default, EntryChoice::Default) => true,
            (EntryChoice::Label(a), EntryChoice::Label(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootMode {
    Menu,
    Direct,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsoConsolePolicy {
    /// Every Linux entry of the image must send the console to the port.
    EveryEntry,
    /// Only the entry that is booted.
    BootedEntry,
}

#[derive(Debug, Clone)]
pub struct BootChoice {
    pub entry: EntryChoice,
    pub mode: BootMode,
    pub append: String,
    pub iso_console: IsoConsolePolicy,
}

/// A contract field that is wrong: the field's path (`console.login.mode`) and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractError {
    pub field: &'static str,
    /// The text to point at in the file.
    pub value: String,
    pub message: String,
    /// The field is missing (not wrong): what lacks it is its parent.
    pub missing: bool,
}

fn err(field: &'static str, value: &str, message: String) -> ContractError {
    ContractError {
        field,
        value: value.to_string(),
        message,
        missing: false,
    }
}

fn missing(field: &'static str, near: &str, message: String) -> ContractError {
    ContractError {
        missing: true,
        ..err(field, near, message)
    }
}

/// Fill a field's `{var}` placeholders (as text, not regex-escaped).
fn text(
    field: &'static str,
    value: &str,
    vars: &BTreeMap<String, String>,
) -> Result<String, ContractError> {
    super::pattern::fill(value, vars, |v| v.to_string()).map_err(|e| err(field, value, e))
}

fn one_of<T: Copy>(
    field: &'static str,
    value: Option<&str>,
    default: T,
    choices: &[(&str, T)],
    vars: &BTreeMap<String, String>,
) -> Result<T, ContractError> {
    let Some(raw) = value else {
        return Ok(default);
    };
    let v = text(field, raw, vars)?;
    choices
        .iter()
        .find(|(name, _)| *name == v)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            err(
                field,
                raw,
                format!("`{field}` is `{v}`: write one of {}", names.join(", ")),
            )
        })
}

/// `near` is where to point when the field is missing (its parent's key).
fn secret(
    field: &'static str,
    near: &str,
    src: Option<&SecretSrc>,
    vars: &BTreeMap<String, String>,
    why: &str,
) -> Result<Secret, ContractError> {
    let Some(s) = src else {
        return Err(missing(
            field,
            near,
            format!("{why} needs `{field}`: {{env: VARIABLE}}, {{file: PATH}} or, for test images, {{literal: TEXT}}"),
        ));
    };
    match (&s.env, &s.file, &s.literal) {
        (Some(v), None, None) => Ok(Secret::Env(text(field, v, vars)?)),
        (None, Some(p), None) => Ok(Secret::File(PathBuf::from(text(field, p, vars)?))),
        (None, None, Some(l)) => Ok(Secret::Literal(l.clone())),
        _ => Err(err(
            field,
            "password",
            format!("`{field}` takes exactly one of env, file and literal"),
        )),
    }
}

fn pattern(
    field: &'static str,
    src: Option<&PatternSrc>,
    default: &str,
    vars: &BTreeMap<String, String>,
) -> Result<Regex, ContractError> {
    match src {
        Some(p) => p.resolve(vars).map_err(|e| err(field, &p.0, e)),
        None => Ok(Regex::new(default).expect("default prompt pattern")),
    }
}

/// Resolve the contract against the profile's vars.
pub fn resolve(
    console: &ConsoleSrc,
    boot: &BootSrc,
    vars: &BTreeMap<String, String>,
) -> Result<Contract, ContractError> {
    let port = match &console.port {
        None => ConsolePort::Serial(0),
        Some(raw) => {
            let v = text("console.port", raw, vars)?;
            match v.as_str() {
                "hvc0" => ConsolePort::Virtio,
                _ => match v.strip_prefix("ttyS").and_then(|n| n.parse::<u8>().ok()) {
                    Some(n) if n <= 3 => ConsolePort::Serial(n),
                    _ => {
                        return Err(err(
                            "console.port",
                            raw,
                            format!(
                                "`console.port` is `{v}`: write ttyS0, ttyS1, ttyS2, ttyS3 or hvc0"
                            ),
                        ))
                    }
                },
            }
        }
    };
    #[derive(Clone, Copy)]
    enum Mode {
        Auto,
        Password,
        None,
    }
    let mode = one_of(
        "console.login.mode",
        console.login.mode.as_deref(),
        Mode::Auto,
        &[
            ("autologin", Mode::Auto),
            ("password", Mode::Password),
            ("none", Mode::None),
        ],
        vars,
    )?;
    let user = |why: &str| -> Result<String, ContractError> {
        match &console.login.user {
            Some(u) => {
                let u = text("console.login.user", u, vars)?;
                if u.is_empty() || u.contains(char::is_whitespace) {
                    return Err(err(
                        "console.login.user",
                        console.login.user.as_deref().unwrap_or_default(),
                        format!("`console.login.user` is `{u}`: a user name, without spaces"),
                    ));
                }
                Ok(u)
            }
            None => Err(missing(
                "console.login.user",
                "login:",
                format!("{why} needs `console.login.user`: the user name"),
            )),
        }
    };
    let login = match mode {
        Mode::Auto => Login::Automatic {
            user: user("an automatic login")?,
        },
        Mode::Password => Login::Password {
            user: user("a password login")?,
            password: secret(
                "console.login.password",
                "login:",
                console.login.password.as_ref(),
                vars,
                "a password login",
            )?,
        },
        Mode::None => Login::None,
    };
    #[derive(Clone, Copy)]
    enum Via {
        Sudo,
        Doas,
        Su,
        None,
    }
    let via = one_of(
        "console.root.via",
        console.root.via.as_deref(),
        Via::Sudo,
        &[
            ("sudo", Via::Sudo),
            ("doas", Via::Doas),
            ("su", Via::Su),
            ("none", Via::None),
        ],
        vars,
    )?;
    let root = match via {
        Via::Sudo => Escalation::Sudo,
        Via::Doas => Escalation::Doas,
        Via::Su => Escalation::Su {
            password: secret(
                "console.root.password",
                "root:",
                console.root.password.as_ref(),
                vars,
                "`su`",
            )?,
        },
        Via::None => Escalation::None,
    };
    let p = &console.prompts;
    let prompts = Prompts {
        login: pattern(
            "console.prompts.login",
            p.login.as_ref(),
            DEFAULT_LOGIN_PROMPT,
            vars,
        )?,
        autologin: pattern(
            "console.prompts.autologin",
            p.autologin.as_ref(),
            DEFAULT_AUTOLOGIN,
            vars,
        )?,
        password: pattern(
            "console.prompts.password",
            p.password.as_ref(),
            DEFAULT_PASSWORD_PROMPT,
            vars,
        )?,
        login_incorrect: pattern(
            "console.prompts.login_incorrect",
            p.login_incorrect.as_ref(),
            DEFAULT_LOGIN_INCORRECT,
            vars,
        )?,
        shell: pattern(
            "console.prompts.shell",
            p.shell.as_ref(),
            DEFAULT_SHELL_PROMPT,
            vars,
        )?,
    };
    if prompts.autologin.captures_len() < 2 {
        return Err(err(
            "console.prompts.autologin",
            p.autologin.as_ref().map_or("", |s| s.0.as_str()),
            "`console.prompts.autologin` needs a capture group: group 1 is the user".into(),
        ));
    }
    let entry = match &boot.entry {
        None => EntryChoice::Default,
        Some(raw) => {
            let v = text("boot.entry", raw, vars)?;
            if v == "default" {
                EntryChoice::Default
            } else {
                EntryChoice::Label(Regex::new(&v).map_err(|e| {
                    err(
                        "boot.entry",
                        raw,
                        format!("`boot.entry` is no valid regex: {e}"),
                    )
                })?)
            }
        }
    };
    let mode = one_of(
        "boot.mode",
        boot.mode.as_deref(),
        BootMode::Menu,
        &[("menu", BootMode::Menu), ("direct", BootMode::Direct)],
        vars,
    )?;
    let iso_console = one_of(
        "boot.iso_console",
        boot.iso_console.as_deref(),
        IsoConsolePolicy::EveryEntry,
        &[
            ("every-entry", IsoConsolePolicy::EveryEntry),
            ("booted-entry", IsoConsolePolicy::BootedEntry),
        ],
        vars,
    )?;
    let append = text("boot.append", &boot.append, vars)?;
    if append.contains(['\n', '\r']) {
        return Err(err(
            "boot.append",
            &boot.append,
            "`boot.append` must be one line".into(),
        ));
    }
    if mode == BootMode::Menu && !append.is_empty() {
        return Err(err(
            "boot.append",
            &boot.append,
            "`boot.append` applies to `boot.mode: direct` only (in menu mode the boot loader passes the entry's own command line)".into(),
        ));
    }
    Ok(Contract {
        port,
        login,
        root,
        prompts,
        boot: BootChoice {
            entry,
            mode,
            append,
            iso_console,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml<T: serde::de::DeserializeOwned>(s: &str) -> T {
        serde_yaml_ng::from_str(s).unwrap()
    }

    #[test]
    fn defaults_are_an_autologin_with_sudo_on_ttys0() {
        let c = resolve(
            &yaml("login: {user: nixos}"),
            &BootSrc::default(),
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(c.port, ConsolePort::Serial(0));
        assert_eq!(
            c.login,
            Login::Automatic {
                user: "nixos".into()
            }
        );
        assert_eq!(c.root, Escalation::Sudo);
        assert_eq!(c.boot.mode, BootMode::Menu);
        assert_eq!(c.boot.entry, EntryChoice::Default);
    }

    #[test]
    fn vars_fill_the_fields() {
        let vars = BTreeMap::from([
            ("login".to_string(), "password".to_string()),
            ("user".to_string(), "root".to_string()),
            ("via".to_string(), "none".to_string()),
        ]);
        let c = resolve(
            &yaml("port: ttyS1\nlogin: {mode: '{login}', user: '{user}', password: {env: PW}}\nroot: {via: '{via}'}"),
            &BootSrc::default(),
            &vars,
        )
        .unwrap();
        assert_eq!(c.port.device(), "ttyS1");
        assert_eq!(
            c.login,
            Login::Password {
                user: "root".into(),
                password: Secret::Env("PW".into())
            }
        );
        assert_eq!(c.root, Escalation::None);
    }

    #[test]
    fn wrong_values_say_what_to_write() {
        let e = resolve(
            &yaml("port: ttyUSB0\nlogin: {user: a}"),
            &BootSrc::default(),
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(e.message.contains("hvc0"), "{e:?}");
        let e = resolve(
            &yaml("login: {mode: pasword, user: a}"),
            &BootSrc::default(),
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(e.message.contains("autologin, password, none"), "{e:?}");
        let e = resolve(
            &yaml("login: {mode: password, user: a}"),
            &BootSrc::default(),
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(e.message.contains("console.login.password"), "{e:?}");
        let e = resolve(
            &yaml("login: {mode: autologin}"),
            &BootSrc::default(),
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(e.message.contains("console.login.user"), "{e:?}");
        let e = resolve(
            &yaml("login: {user: a}\nroot: {via: su}"),
            &BootSrc::default(),
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(e.message.contains("console.root.password"), "{e:?}");
        let e = resolve(
            &yaml("login: {user: a}"),
            &yaml("append: console=ttyS0"),
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(e.message.contains("direct"), "{e:?}");
    }

    #[test]
    fn escalations_wrap_for_a_posix_shell() {
        assert_eq!(Escalation::Sudo.wrap("id -u"), "sudo -n sh -c 'id -u'");
        assert_eq!(Escalation::Doas.wrap("id -u"), "doas -n sh -c 'id -u'");
        assert_eq!(Escalation::None.wrap("id -u"), "id -u");
        let su = Escalation::Su {
            password: Secret::Literal("x".into()),
        };
        assert_eq!(
            su.wrap("echo 'a'"),
            r#"su - root -c '{ echo '\''a'\'' ; } </dev/null'"#
        );
    }

    #[test]
    fn a_secret_never_shows_in_debug() {
        let s = Secret::Literal("hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.reveal().unwrap(), "hunter2");
        assert!(Secret::Literal("a\nb".into())
            .reveal()
            .unwrap_err()
            .contains("control character"));
        assert!(Secret::Env("BOOTAUDIT_SURELY_UNSET_VAR".into())
            .reveal()
            .unwrap_err()
            .contains("export"));
    }

    #[test]
    fn default_prompts_match_real_consoles() {
        let c = resolve(
            &yaml("login: {user: a}"),
            &BootSrc::default(),
            &BTreeMap::new(),
        )
        .unwrap();
        let p = &c.prompts;
        assert!(p.login.is_match("edge login: "));
        assert!(p.password.is_match("Password: "));
        assert!(p.password.is_match("[sudo] password for nixos:"));
        assert!(p.password.is_match("doas (operator@edge) password:"));
        assert!(p.login_incorrect.is_match("Login incorrect"));
        assert!(p.login_incorrect.is_match("su: Authentication failure"));
        for prompt in [
            "# ",
            "$ ",
            "root@edge:~# ",
            "~ # ",
            "[nixos@nixos:~]$ ",
            "edge% ",
        ] {
            assert!(p.shell.is_match(prompt), "{prompt}");
        }
        assert!(!p.shell.is_match("# \nmore output"));
    }
}
