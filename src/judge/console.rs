//! The console dialogues' verdicts, in the words both a live boot and a replay give: pure
//! functions of what the console showed, so the two can never word (or decide) one case two
//! ways.

use crate::model::Outcome;

/// A line quoted for a one-line message (at most 300 characters).
pub fn quote(s: &str) -> String {
    if s.is_empty() {
        "(nothing)".into()
    } else {
        format!("\"{}\"", s.chars().take(300).collect::<String>())
    }
}

/// A condition that can only pass after `first`, which failed, judged on what was shown: it
/// failed. `missing` says what was not shown.
pub fn after_failed(missing: &str, first: &str) -> Outcome {
    Outcome::fail(
        format!(
            "{missing} — it can only pass after {first}, which failed, so it was judged on what the guest had shown"
        ),
        "",
    )
}

/// An automatic login of `user` where the profile expects `expected`.
pub fn autologin(user: &str, expected: &str, line: String) -> Outcome {
    if user == expected {
        Outcome::pass(format!("automatic login of `{user}`"), line)
    } else {
        Outcome::fail(
            format!("automatic login of `{user}`, expected `{expected}`"),
            line,
        )
    }
}

/// A login prompt came back and nobody was logged in automatically.
pub fn no_autologin(expected: &str, line: String) -> Outcome {
    Outcome::fail(
        format!(
            "the console shows a login prompt but nobody is logged in automatically (expected `{expected}`)"
        ),
        line,
    )
}

/// `user` logged in with the password from `source` (None: no password was asked).
pub fn password_login(user: &str, source: Option<&str>) -> Outcome {
    match source {
        Some(source) => Outcome::pass(
            format!("logged in as `{user}` with the password from {source}"),
            format!("{user}: a shell prompt after the password"),
        ),
        None => Outcome::pass(
            format!("logged in as `{user}`"),
            format!("{user}: a shell prompt"),
        ),
    }
}

/// The login of `user` was refused (`line`: "Login incorrect", or the prompt again).
pub fn login_refused(user: &str, line: String) -> Outcome {
    Outcome::fail(
        format!("the login as `{user}` was refused: {}", quote(&line)),
        line,
    )
}

/// A failure signature's line; `earlier`: it came before this condition started.
pub fn signature(name: &str, line: &str, earlier: bool) -> Outcome {
    let when = if earlier {
        " (seen earlier on the console)"
    } else {
        ""
    };
    Outcome::fail(format!("{name}{when}: {}", quote(line)), line.to_string())
}

/// A condition that ran out of time after the guest said it was starved of CPU: the run cannot
/// tell a slow guest from a broken image, so this is an error of the run, not a verdict.
pub fn starved(timed_out: Outcome, stall: &str, line: &str) -> Outcome {
    let mut o = Outcome::error(format!(
        "could not judge: the guest was starved of CPU ({stall}: {}) and then {} — an \
         overloaded host or emulation under load stalls a guest; rerun on an idle host or with \
         a larger --timeout-scale (a stall on an idle host points at the image's kernel)",
        quote(line),
        timed_out.message
    ));
    o.evidence = line.to_string();
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Status;

    #[test]
    fn an_autologin_of_another_user_fails() {
        assert_eq!(autologin("nixos", "nixos", "l".into()).status, Status::Pass);
        let o = autologin("root", "nixos", "l".into());
        assert_eq!(o.status, Status::Fail);
        assert!(o.message.contains("expected `nixos`"), "{}", o.message);
    }

    #[test]
    fn a_refused_login_quotes_the_console() {
        let o = login_refused("root", "Login incorrect".into());
        assert_eq!(o.status, Status::Fail);
        assert_eq!(
            o.message,
            "the login as `root` was refused: \"Login incorrect\""
        );
        let o = password_login("root", Some("the environment variable PW"));
        assert!(o.message.contains("PW") && o.status == Status::Pass);
    }
}
