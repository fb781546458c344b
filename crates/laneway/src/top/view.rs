//! Drawing `laneway top` (ratatui) for an 80×24 terminal and up: a header
//! with the totals, the ten lanes, then destinations beside holds and
//! shaping rules (or, for one lane, its destinations beside its
//! messages), and a line of keys, prompt or outcome.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Row, Table};

use super::model::{App, Item, Prompt, View};
use crate::print::humantime;

/// Draws everything.
pub fn draw(f: &mut Frame, app: &App) {
    let [header, lanes, lower, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(11),
        Constraint::Min(4),
        Constraint::Length(1),
    ])
    .areas(f.area());
    f.render_widget(Paragraph::new(header_line(app)), header);
    f.render_widget(lane_table(app), lanes);
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(lower);
    f.render_widget(destination_table(app), left);
    match app.view {
        View::Overview => f.render_widget(holds(app, right), right),
        View::Lane(l) => f.render_widget(messages(app, l, right), right),
    }
    f.render_widget(Paragraph::new(footer_line(app)), footer);
}

fn rate(r: Option<f64>) -> String {
    r.map(|r| format!("{r:.1}")).unwrap_or_else(|| "-".into())
}

/// `queued N  ready N  deferred N  in x/s  out y/s`, and the time (UTC).
fn header_line(app: &App) -> Line<'static> {
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() % 86400)
        .unwrap_or(0);
    let time = format!(
        "{:02}:{:02}:{:02}Z",
        clock / 3600,
        clock % 3600 / 60,
        clock % 60
    );
    let Some(s) = &app.now else {
        return Line::from(format!("laneway top  connecting…  {time}"));
    };
    let q = &s.queue;
    let (i, o) = app.total_rates().unzip();
    Line::from(format!(
        "laneway top  queued {}  ready {}  deferred {}  in {}/s  out {}/s  {time}",
        q.total,
        q.ready,
        q.deferred,
        rate(i),
        rate(o)
    ))
    .bold()
}

/// One row per lane, 9 down to 0; the lane shown in detail stands out.
fn lane_table(app: &App) -> Table<'static> {
    let header = Row::new([
        "lane", "queued", "ready", "deferred", "in/s", "out/s", "oldest",
    ])
    .style(Style::new().add_modifier(Modifier::REVERSED));
    let mut rows = Vec::new();
    if let Some(s) = &app.now {
        let mut lanes: Vec<_> = s.queue.lanes.iter().collect();
        lanes.sort_by_key(|l| std::cmp::Reverse(l.lane));
        for l in lanes {
            let (i, o) = app
                .rates
                .get(usize::from(l.lane))
                .copied()
                .flatten()
                .unzip();
            let row = Row::new([
                l.lane.to_string(),
                l.count.to_string(),
                l.ready.to_string(),
                l.deferred.to_string(),
                rate(i),
                rate(o),
                l.oldest_age_seconds
                    .map(humantime)
                    .unwrap_or_else(|| "-".into()),
            ]);
            rows.push(if app.view == View::Lane(l.lane) {
                row.style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED))
            } else {
                row
            });
        }
    }
    Table::new(rows, [Constraint::Length(8); 7]).header(header)
}

/// The busiest destinations (of the lane, in the lane view).
fn destination_table(app: &App) -> Table<'static> {
    let title = match app.view {
        View::Overview => " destinations ".to_string(),
        View::Lane(l) => format!(" destinations of lane {l} "),
    };
    let items = app.items();
    let mut rows = Vec::new();
    if let Some(s) = &app.now {
        for (i, n) in app.destinations() {
            let d = &s.queue.destinations[i];
            let state = if d.suspended {
                "held"
            } else {
                d.health.as_str()
            };
            let row = Row::new([
                d.domains.first().cloned().unwrap_or_else(|| d.site.clone()),
                // the lane's ready work in a lane view; deferred is of all lanes
                match app.view {
                    View::Overview => d.ready,
                    View::Lane(_) => n,
                }
                .to_string(),
                d.deferred.to_string(),
                d.connections.to_string(),
                state.to_string(),
            ]);
            let chosen = items.get(app.selected) == Some(&Item::Destination(i));
            rows.push(if chosen { row.reversed() } else { row });
        }
    }
    Table::new(
        rows,
        [
            Constraint::Min(10),
            Constraint::Length(5),
            Constraint::Length(8),
            Constraint::Length(5),
            Constraint::Length(9),
        ],
    )
    .header(Row::new(["domain", "ready", "deferred", "conns", "state"]).underlined())
    .block(Block::bordered().title(title))
}

/// Held domains and the shaping rules holding providers.
fn holds(app: &App, area: Rect) -> Paragraph<'static> {
    let width = usize::from(area.width.saturating_sub(2));
    let mut lines = Vec::new();
    if let Some(s) = &app.now {
        let items = app.items();
        for h in &s.queue.suspended_domains {
            let line = Line::from(clip(format!("held  {h}"), width));
            let chosen = items.get(app.selected) == Some(&Item::Hold(h.clone()));
            lines.push(if chosen { line.reversed() } else { line });
        }
        for r in &s.rules {
            lines.push(Line::from(clip(
                format!(
                    "{} {} {} {} {}s",
                    r.provider, r.action, r.lanes, r.phase, r.remaining_seconds
                ),
                width,
            )));
        }
        if lines.is_empty() {
            lines.push(Line::from("none"));
        }
    }
    Paragraph::new(lines).block(Block::bordered().title(" holds and shaping "))
}

/// The lane's messages, oldest first.
fn messages(app: &App, lane: u8, area: Rect) -> Paragraph<'static> {
    let width = usize::from(area.width.saturating_sub(2));
    let lines: Vec<Line> = if app.messages.is_empty() {
        vec![Line::from("none")]
    } else {
        app.messages
            .iter()
            .map(|m| {
                let to = m.recipients.first().map(String::as_str).unwrap_or("-");
                Line::from(clip(
                    format!("{:<9} {:>2} {to}", m.state, m.attempts),
                    width,
                ))
            })
            .collect()
    };
    Paragraph::new(lines).block(Block::bordered().title(format!(" messages of lane {lane} ")))
}

/// The prompt, else the last outcome or error, else the keys.
fn footer_line(app: &App) -> Line<'static> {
    match (&app.prompt, &app.error, &app.status) {
        (Some(Prompt::Suspend(d)), _, _) => Line::from(format!(
            "suspend mail to: {d}_  (Enter confirms, Esc cancels)"
        ))
        .bold(),
        (Some(Prompt::Resume(d)), _, _) => Line::from(format!("resume mail to {d}? (y/n)")).bold(),
        (None, Some(e), _) => Line::from(format!("error: {e}")).red(),
        (None, None, Some(s)) => Line::from(s.clone()),
        _ => Line::from("q quit  0-9 lane  a all lanes  ↑↓ select  s suspend  r resume"),
    }
}

fn clip(s: String, width: usize) -> String {
    if s.chars().count() <= width {
        s
    } else {
        let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::model::tests::snapshot;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use std::time::{Duration, Instant};

    fn screen(app: &App, w: u16, h: u16) -> Vec<String> {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| draw(f, app)).unwrap();
        let buf = t.backend().buffer().clone();
        (0..h)
            .map(|y| (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect())
            .collect()
    }

    #[test]
    fn an_80x24_screen_shows_totals_every_lane_and_the_keys() {
        let t0 = Instant::now();
        let mut app = App::default();
        app.update(snapshot(t0, 10));
        app.update(snapshot(t0 + Duration::from_secs(1), 20));
        let s = screen(&app, 80, 24);
        assert!(
            s[0].contains("queued 90  ready 45  deferred 45  in 450.0/s  out 100.0/s"),
            "{}",
            s[0]
        );
        assert!(s[1].starts_with("lane"), "{}", s[1]);
        // rows 9 down to 0: lane l has 2l queued, l ready, l deferred
        for (row, lane) in s[2..12].iter().zip((0..10u64).rev()) {
            let cells: Vec<&str> = row.split_whitespace().collect();
            let want = [lane, 2 * lane, lane, lane].map(|n| n.to_string());
            assert_eq!(cells[..4], want, "{row}");
        }
        let body = s.join("\n");
        assert!(body.contains("big.test"), "{body}");
        assert!(body.contains("held  *.held.test"), "{body}");
        assert!(s[23].starts_with("q quit"), "{}", s[23]);
    }

    #[test]
    fn the_prompt_replaces_the_keys_and_a_lane_view_lists_messages() {
        let mut app = App::default();
        app.update(snapshot(Instant::now(), 1));
        app.key(super::super::model::Key::Char('9'));
        let s = screen(&app, 80, 24);
        assert!(s.join("\n").contains("messages of lane 9"));
        app.key(super::super::model::Key::Char('s'));
        let s = screen(&app, 80, 24);
        assert!(
            s[23].starts_with("suspend mail to: small.test_"),
            "{}",
            s[23]
        );
    }
}
