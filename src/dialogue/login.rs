//! Logging in at a getty's prompts, as a person would: type the user name, answer the password
//! prompt, and wait for a shell or the refusal. The password goes to the guest only (the
//! console's transcripts show `[secret]`).

use super::{Dialogue, WaitError};
use crate::config::contract::Prompts;
use tokio::time::Instant;

/// How a password login ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordLogin {
    /// A shell prompt came; `asked`: after a password prompt (else none was asked).
    Accepted { asked: bool },
    /// "Login incorrect" (or su's, doas's refusal); `at` is where in the transcript.
    Refused { at: usize },
}

/// Log `user` in with `password`; the cursor must be after the login prompt.
pub async fn with_password(
    d: &mut Dialogue,
    prompts: &Prompts,
    user: &str,
    password: &str,
    deadline: Instant,
) -> Result<PasswordLogin, WaitError> {
    d.send_line(user).await?;
    let asked = d
        .expect(
            &[
                prompts.password.clone(),
                prompts.shell.clone(),
                prompts.login_incorrect.clone(),
            ],
            deadline,
        )
        .await?;
    match asked.pattern {
        1 => return Ok(PasswordLogin::Accepted { asked: false }),
        2 => return Ok(PasswordLogin::Refused { at: asked.start }),
        _ => {}
    }
    d.settle_after_prompt().await;
    d.send_secret_line(password).await?;
    // Not the login prompt: "Last login: …" would match it.
    let answer = d
        .expect(
            &[prompts.shell.clone(), prompts.login_incorrect.clone()],
            deadline,
        )
        .await?;
    Ok(match answer.pattern {
        0 => PasswordLogin::Accepted { asked: true },
        _ => PasswordLogin::Refused { at: answer.start },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::contract::{resolve, BootSrc, ConsoleSrc};
    use crate::dialogue::RootAccess;
    use crate::signal::Cancel;
    use bootaudit_console::{Console, ConsoleConfig, ConsoleEvent, FnSink, NoiseFilter};
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};

    fn prompts() -> Prompts {
        let console: ConsoleSrc = serde_yaml_ng::from_str("login: {user: root}").unwrap();
        resolve(&console, &BootSrc::default(), &BTreeMap::new())
            .unwrap()
            .prompts
    }

    /// A dialogue on a scripted guest, and everything the console reported as sent.
    fn dialogue() -> (Dialogue, DuplexStream, Arc<Mutex<Vec<u8>>>) {
        let (harness, guest) = tokio::io::duplex(4096);
        let sent = Arc::new(Mutex::new(Vec::new()));
        let record = sent.clone();
        let config = ConsoleConfig::default().sink(FnSink(move |e: ConsoleEvent| {
            if let ConsoleEvent::Sent { bytes, .. } = e {
                record.lock().unwrap().extend_from_slice(&bytes);
            }
        }));
        let console = Console::from_stream(harness, config);
        (
            Dialogue::new(console, vec![], NoiseFilter::none(), Cancel::new()),
            guest,
            sent,
        )
    }

    /// A dialogue whose root commands go through `su`, answered with `password`.
    fn su_dialogue(password: &str) -> (Dialogue, DuplexStream, Arc<Mutex<Vec<u8>>>) {
        use crate::config::contract::{Escalation, Secret};
        let (d, guest, sent) = dialogue();
        let d = d.with_root(
            prompts().password,
            RootAccess {
                escalation: Escalation::Su {
                    password: Secret::Literal("unused".into()),
                },
                password: Some(password.into()),
            },
        );
        (d, guest, sent)
    }

    /// The frame's token, from the line the harness sent.
    fn token_of(line: &str) -> String {
        let after = line.split("\"_").nth(1).expect("a framed line");
        after.split('_').next().unwrap_or_default().to_string()
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    /// login(1) on a serial getty, with `shell` as the prompt after a good password.
    async fn getty(guest: DuplexStream, good: &'static str, shell: &'static str) -> Vec<String> {
        let (r, mut w) = tokio::io::split(guest);
        let mut lines = BufReader::new(r).lines();
        let mut got = Vec::new();
        let user = lines.next_line().await.unwrap().unwrap();
        w.write_all(format!("{user}\r\nPassword: ").as_bytes())
            .await
            .unwrap();
        let password = lines.next_line().await.unwrap().unwrap();
        got.push(user);
        got.push(password.clone());
        let reply = if password.trim_end() == good {
            format!("\r\nLast login: never\r\n{shell}")
        } else {
            "\r\n\r\nLogin incorrect\r\nedge login: ".to_string()
        };
        w.write_all(reply.as_bytes()).await.unwrap();
        got
    }

    #[tokio::test]
    async fn a_password_login_reaches_dashs_prompt() {
        let (mut d, guest, sent) = dialogue();
        let guest = tokio::spawn(getty(guest, "s3cret", "# "));
        let r = with_password(&mut d, &prompts(), "root", "s3cret", soon()).await;
        assert_eq!(r.unwrap(), PasswordLogin::Accepted { asked: true });
        assert_eq!(guest.await.unwrap(), ["root", "s3cret"]);
        let sent = String::from_utf8(sent.lock().unwrap().clone()).unwrap();
        assert!(
            !sent.contains("s3cret"),
            "the password is never reported: {sent:?}"
        );
        assert!(sent.contains("[secret]"), "{sent:?}");
    }

    #[tokio::test]
    async fn a_wrong_password_is_refused() {
        let (mut d, guest, _) = dialogue();
        tokio::spawn(getty(guest, "s3cret", "# "));
        let r = with_password(&mut d, &prompts(), "root", "wrong", soon())
            .await
            .unwrap();
        let PasswordLogin::Refused { at } = r else {
            panic!("{r:?}")
        };
        let text = d.console.transcript();
        assert!(text[at..].starts_with("Login incorrect"), "{text:?}");
    }

    #[tokio::test]
    async fn a_users_bash_prompt_counts_too() {
        let (mut d, guest, _) = dialogue();
        tokio::spawn(getty(guest, "pw", "operator@edge:~$ "));
        let r = with_password(&mut d, &prompts(), "operator", "pw", soon()).await;
        assert_eq!(r.unwrap(), PasswordLogin::Accepted { asked: true });
    }

    /// `su` asking for root's password inside a framed command: answered once, its prompt
    /// kept out of the output; a refusal is the command's output (su's own message).
    #[tokio::test]
    async fn su_is_answered_with_roots_password() {
        for (password, want_out, want_rc) in [
            ("rootpw", "0", 0),
            ("nope", "su: Authentication failure", 1),
        ] {
            let (mut d, guest, sent) = su_dialogue(password);
            let guest = tokio::spawn(async move {
                let (r, mut w) = tokio::io::split(guest);
                let mut lines = BufReader::new(r).lines();
                let line = lines.next_line().await.unwrap().unwrap();
                assert!(line.contains("su - root -c"), "{line}");
                assert!(
                    !line.contains("} </dev/null 2>&1; printf"),
                    "stdin stays on the terminal: {line}"
                );
                let token = token_of(&line);
                w.write_all(format!("{line}\r\nBA_{token}_BEGIN su\r\nPassword: ").as_bytes())
                    .await
                    .unwrap();
                let typed = lines.next_line().await.unwrap().unwrap();
                let (out, rc) = if typed == "rootpw" {
                    ("0", 0)
                } else {
                    ("su: Authentication failure", 1)
                };
                w.write_all(format!("\r\n{out}\r\n\r\nBA_{token}_END rc={rc}\r\n$ ").as_bytes())
                    .await
                    .unwrap();
            });
            let run = d.run("id -u", true, soon()).await.unwrap();
            guest.await.unwrap();
            assert_eq!(run.output.text().trim(), want_out);
            assert_eq!(run.output.exit_code, want_rc);
            let sent = String::from_utf8(sent.lock().unwrap().clone()).unwrap();
            assert!(!sent.contains(password), "{sent:?}");
        }
    }

    /// Output that merely ends in "password:" is not su asking: nothing is typed into it.
    #[tokio::test]
    async fn only_sus_own_prompt_gets_the_password() {
        let (mut d, guest, sent) = su_dialogue("rootpw");
        let guest = tokio::spawn(async move {
            let (r, mut w) = tokio::io::split(guest);
            let mut lines = BufReader::new(r).lines();
            let line = lines.next_line().await.unwrap().unwrap();
            let token = token_of(&line);
            // pam_rootok: su asks nothing; the command prints a line ending in "Password:".
            w.write_all(format!("{line}\r\nBA_{token}_BEGIN su\r\nsshd_config\r\nPermitEmptyPasswords no\r\nEnter the new Password: ").as_bytes())
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(800)).await;
            w.write_all(format!("\r\n\r\nBA_{token}_END rc=0\r\n# ").as_bytes())
                .await
                .unwrap();
        });
        let run = d.run("cat notes", true, soon()).await.unwrap();
        guest.await.unwrap();
        assert_eq!(run.output.exit_code, 0);
        let sent = String::from_utf8(sent.lock().unwrap().clone()).unwrap();
        assert!(!sent.contains("[secret]"), "nothing was typed: {sent:?}");
    }
}
