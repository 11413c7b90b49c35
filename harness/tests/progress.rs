//! The progress bar as a user sees it in an 80-column terminal: a visible bar (not `[]`), and for a
//! `--duration` run the time left. Run under a real pseudo-terminal (python3's pty module) of 80 columns.

mod common;

use common::root;
use std::process::Command;

/// Run dbtorture with `args` on a pty of 80 columns; everything it drew, escape sequences stripped.
fn on_a_terminal(args: &[&str]) -> String {
    let script = r#"
import fcntl, os, pty, struct, sys, termios
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    os.execv(sys.argv[1], sys.argv[1:])
out = b""
while True:
    try:
        chunk = os.read(fd, 65536)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
os.waitpid(pid, 0)
sys.stdout.buffer.write(out)
"#;
    let out =
        Command::new("python3").arg("-c").arg(script).arg(env!("CARGO_BIN_EXE_dbtorture")).args(args).output().unwrap();
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    // Strip CSI sequences (cursor movement, colours) and split redraws into lines.
    let mut text = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        text.push(if c == '\r' { '\n' } else { c });
    }
    text
}

/// The bar's inside on a progress line: the characters between '[' and ']'.
fn bar_widths(text: &str) -> Vec<usize> {
    text.lines()
        .filter_map(|l| {
            let a = l.find('[')?;
            let b = a + l[a..].find(']')?;
            let inner = &l[a + 1..b];
            inner.chars().all(|c| c == '=' || c == '>' || c == ' ').then(|| inner.chars().count())
        })
        .collect()
}

#[test]
fn at_80_columns_the_bar_is_visible_and_a_duration_run_shows_the_time_left() {
    let d = tempfile::tempdir().unwrap();
    let smoke = root().join("scenarios/smoke.toml").display().to_string();
    let out = d.path().join("a").display().to_string();
    // Both backends: bdbenv's outcomes make the status text long, which is what squeezed the bar to `[]`.
    let text = on_a_terminal(&["run", &smoke, "--cycles", "12", "--out", &out]);
    let widths = bar_widths(&text);
    assert!(!widths.is_empty(), "a progress line was drawn: {text}");
    assert!(widths.iter().all(|w| *w >= 10), "the bar keeps its width at 80 columns: {widths:?}\n{text}");
    let wide: Vec<&str> = text.lines().filter(|l| l.contains(" ETA ") && l.chars().count() > 80).collect();
    assert!(wide.is_empty(), "no progress line is wider than the terminal: {wide:?}");

    let out = d.path().join("b").display().to_string();
    let text = on_a_terminal(&["run", &smoke, "--duration", "3s", "--backend", "sqlite", "--out", &out]);
    let widths = bar_widths(&text);
    assert!(!widths.is_empty() && widths.iter().all(|w| *w >= 10), "a duration run has a bar too: {text}");
    assert!(text.contains(" left"), "and says how much time is left: {text}");
}
