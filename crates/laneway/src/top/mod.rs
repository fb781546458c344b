//! `laneway top`: a live view of the running daemon's lanes, read every
//! second over the control socket or `--url` (the same API as `laneway
//! queue`). What is shown and what the keys do is in [`model`], the
//! drawing in [`view`]; this file is the loop between them and the
//! terminal.

mod model;
mod view;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use serde_json::Value;

use crate::cli::TargetArgs;
use crate::ctl::{Target, target_of};
use model::{Action, App, Key, Snapshot, View};

/// How often the daemon is read.
const REFRESH: Duration = Duration::from_secs(1);
/// How long one API call may take before the screen says so.
const TIMEOUT: Duration = Duration::from_secs(3);

/// Runs the view until `q`.
pub fn main(t: TargetArgs) -> ExitCode {
    if t.json {
        eprintln!(
            "error: laneway top is a screen and has no --json; laneway queue stats --json prints the same numbers"
        );
        return ExitCode::from(2);
    }
    let Some(target) = target_of(&t) else {
        return ExitCode::FAILURE;
    };
    let mut terminal = match ratatui::try_init() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: laneway top needs a terminal: {e}");
            return ExitCode::FAILURE;
        }
    };
    let r = run(&target, &mut terminal);
    ratatui::restore();
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(target: &Target, terminal: &mut ratatui::DefaultTerminal) -> std::io::Result<()> {
    let mut app = App::default();
    let mut next = Instant::now();
    loop {
        if Instant::now() >= next {
            refresh(target, &mut app);
            next = Instant::now() + REFRESH;
        }
        terminal.draw(|f| view::draw(f, &app))?;
        if !event::poll(next.saturating_duration_since(Instant::now()))? {
            continue;
        }
        let Event::Key(k) = event::read()? else {
            continue; // a resize: drawn again above
        };
        if k.kind != KeyEventKind::Press {
            continue;
        }
        let key = match k.code {
            KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => return Ok(()),
            KeyCode::Char(c) => Key::Char(c),
            KeyCode::Up => Key::Up,
            KeyCode::Down => Key::Down,
            KeyCode::Enter => Key::Enter,
            KeyCode::Esc => Key::Esc,
            KeyCode::Backspace => Key::Backspace,
            _ => continue,
        };
        match app.key(key) {
            Action::Quit => return Ok(()),
            Action::None => {}
            Action::Refresh => next = Instant::now(),
            Action::Suspend(p) => {
                app.status = Some(act(target, "suspend", &p));
                next = Instant::now();
            }
            Action::Resume(p) => {
                app.status = Some(act(target, "resume", &p));
                next = Instant::now();
            }
        }
    }
}

/// Reads the queue, the shaping rules and (in a lane view) the lane's
/// messages; an error is shown and the last reading kept.
fn refresh(target: &Target, app: &mut App) {
    let queue = match get(target, "/api/v1/queue")
        .and_then(|v| serde_json::from_value(v).map_err(|e| format!("unexpected answer: {e}")))
    {
        Ok(q) => q,
        Err(e) => {
            app.error = Some(e);
            return;
        }
    };
    // the rules are a side panel: a daemon without the route shows none
    let rules = get(target, "/api/v1/shaping")
        .ok()
        .and_then(|v| serde_json::from_value(v["active"].clone()).ok())
        .unwrap_or_default();
    app.messages = match app.view {
        View::Overview => Vec::new(),
        View::Lane(l) => get(target, &format!("/api/v1/queue/messages?lane={l}&limit=20"))
            .ok()
            .and_then(|v| serde_json::from_value(v["messages"].clone()).ok())
            .unwrap_or_default(),
    };
    app.update(Snapshot {
        queue,
        rules,
        at: Instant::now(),
    });
}

fn get(target: &Target, path: &str) -> Result<Value, String> {
    match target.request_within("GET", path, None, TIMEOUT)? {
        (s, v) if (200..300).contains(&s) => Ok(v),
        (s, v) => Err(format!("{path}: {s} {}", v["error"]["message"])),
    }
}

/// Suspends or resumes `pattern`; says how it went.
fn act(target: &Target, verb: &str, pattern: &str) -> String {
    let path = format!(
        "/api/v1/destinations/{}/{verb}",
        crate::ctl::encode(pattern)
    );
    match target.request_within("POST", &path, None, TIMEOUT) {
        Ok((s, _)) if (200..300).contains(&s) => {
            format!(
                "{pattern}: {}",
                if verb == "suspend" {
                    "suspended"
                } else {
                    "resumed"
                }
            )
        }
        Ok((s, v)) => format!(
            "{verb} {pattern} failed ({s}): {}",
            v["error"]["message"].as_str().unwrap_or("?")
        ),
        Err(e) => format!("{verb} {pattern} failed: {e}"),
    }
}
