//! Each credential's Active / Inactive / Revoked periods, derived from when its version was
//! created, and drawn as a chart in the terminal (like a Gantt chart of the credential
//! lifecycle): one block of columns per rotation, so that rotations seconds or months apart
//! read alike (the dates are in the periods).
//!
//! A version is Active from its creation until the next version's; a dual-phase credential
//! then stays valid (Inactive) until the version after that, a single-phase one is Revoked at
//! once.

use serde::Serialize;

/// A credential's state over a period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum State {
    /// The credential in use (AWSCURRENT).
    Active,
    /// Still valid, about to be revoked (a dual-phase AWSPREVIOUS).
    Inactive,
    /// No longer valid.
    Revoked,
}

impl State {
    fn glyph(self) -> char {
        match self {
            State::Active => '█',
            State::Inactive => '▒',
            State::Revoked => '×',
        }
    }
}

/// One period of a credential, in seconds since the epoch; `until` None means "still".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Period {
    /// The state.
    pub state: State,
    /// When it began.
    pub from: i64,
    /// When it ended, if it did.
    pub until: Option<i64>,
    /// The rotation that began it (0: the first version's creation).
    #[serde(skip)]
    from_rotation: usize,
}

/// One credential's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Life {
    /// Its version id.
    pub version: String,
    /// Its periods, in order.
    pub periods: Vec<Period>,
}

/// The lives of credentials created at `created` (version id, seconds since the epoch; sorted
/// here by time, stably, so ties keep the order given), staying valid `grace` rotations after being replaced (1 dual-phase, 0 single-phase).
pub fn lives(created: &[(String, i64)], grace: usize) -> Vec<Life> {
    let mut versions = created.to_vec();
    versions.sort_by_key(|(_, t)| *t);
    let at = |i: usize| versions.get(i).map(|(_, t)| *t);
    versions
        .iter()
        .enumerate()
        .map(|(i, (version, from))| {
            let mut periods = vec![Period {
                state: State::Active,
                from: *from,
                until: at(i + 1),
                from_rotation: i,
            }];
            if let Some(replaced) = at(i + 1) {
                let revoked = at(i + 1 + grace);
                if grace > 0 {
                    periods.push(Period {
                        state: State::Inactive,
                        from: replaced,
                        until: revoked,
                        from_rotation: i + 1,
                    });
                }
                if let Some(revoked) = revoked {
                    periods.push(Period {
                        state: State::Revoked,
                        from: revoked,
                        until: None,
                        from_rotation: i + 1 + grace,
                    });
                }
            }
            Life {
                version: version.clone(),
                periods,
            }
        })
        .collect()
}

/// Draws `lives` (as [`lives`] made them, oldest first), `block` columns per rotation, one row
/// per credential labelled with `label(version)`, then the legend.
pub fn draw(lives: &[Life], block: usize, label: impl Fn(&str) -> String) -> String {
    if lives.is_empty() {
        return "  (no versions)\n".to_owned();
    }
    // `lives` may be the newest of a longer history: the first drawn starts at column 0.
    let origin = lives[0].periods.first().map_or(0, |p| p.from_rotation);
    let width = lives.len() * block;
    let labels: Vec<String> = lives.iter().map(|l| label(&l.version)).collect();
    let label_width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (life, label) in lives.iter().zip(&labels) {
        let mut row = vec![' '; width];
        for (n, p) in life.periods.iter().enumerate() {
            let from = p.from_rotation.saturating_sub(origin) * block;
            let until = life.periods.get(n + 1).map_or(width, |next| {
                next.from_rotation.saturating_sub(origin) * block
            });
            for cell in &mut row[from.min(width)..until.min(width)] {
                *cell = p.state.glyph();
            }
        }
        let state = life
            .periods
            .last()
            .map(|p| format!("{:?}", p.state))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {label:<label_width$} │{}│ {state}\n",
            row.into_iter().collect::<String>()
        ));
    }
    out.push_str(&format!(
        "  {:<label_width$}  {} Active  {} Inactive (still valid)  {} Revoked; {block} columns per rotation\n",
        "",
        State::Active.glyph(),
        State::Inactive.glyph(),
        State::Revoked.glyph()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versions() -> Vec<(String, i64)> {
        vec![("c".into(), 200), ("a".into(), 0), ("b".into(), 100)]
    }

    #[test]
    fn dual_phase_credentials_stay_valid_one_rotation() {
        let lives = lives(&versions(), 1);
        assert_eq!(lives[0].version, "a");
        assert_eq!(
            lives[0].periods,
            vec![
                Period {
                    state: State::Active,
                    from: 0,
                    until: Some(100),
                    from_rotation: 0,
                },
                Period {
                    state: State::Inactive,
                    from: 100,
                    until: Some(200),
                    from_rotation: 1,
                },
                Period {
                    state: State::Revoked,
                    from: 200,
                    until: None,
                    from_rotation: 2,
                },
            ]
        );
        assert_eq!(lives[1].periods.last().unwrap().state, State::Inactive);
        assert_eq!(lives[2].periods.len(), 1);
        assert_eq!(lives[2].periods[0].state, State::Active);
    }

    #[test]
    fn single_phase_credentials_are_revoked_when_replaced() {
        let lives = lives(&versions(), 0);
        assert_eq!(lives[0].periods.len(), 2);
        assert_eq!(lives[0].periods[1].state, State::Revoked);
        assert_eq!(lives[0].periods[1].from, 100);
        assert_eq!(lives[1].periods[1].from, 200);
    }

    #[test]
    fn draws_one_row_per_credential_across_the_width() {
        let chart = draw(&lives(&versions(), 1), 10, |v| format!("v-{v}"));
        let rows: Vec<&str> = chart.lines().collect();
        assert_eq!(rows.len(), 4, "{chart}");
        assert_eq!(rows[0], "  v-a │██████████▒▒▒▒▒▒▒▒▒▒××××××××××│ Revoked");
        assert_eq!(rows[1], "  v-b │          ██████████▒▒▒▒▒▒▒▒▒▒│ Inactive");
        assert_eq!(rows[2], "  v-c │                    ██████████│ Active");
        assert!(rows[3].contains("Active") && rows[3].contains("Revoked"));
    }

    #[test]
    fn draws_the_newest_of_a_long_history_from_column_zero() {
        let all = lives(&versions(), 0);
        let chart = draw(&all[1..], 2, |v| v.to_owned());
        let rows: Vec<&str> = chart.lines().collect();
        assert_eq!(rows[0], "  b │██××│ Revoked");
        assert_eq!(rows[1], "  c │  ██│ Active");
    }
}
