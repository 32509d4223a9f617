//! The local driver (it lives in the shared engine, [`rotation::driver`]) and how the command
//! line renders a rotation it ran.

pub use rotation::driver::{LocalDriver, RotationRun, StepProgress, StepRun};

/// Renders a rotation as a table: step, function, outcome, duration, Secrets Manager calls.
pub fn render_run(run: &RotationRun) -> String {
    let mut out = format!(
        "rotation of {} with token {}{}\n",
        run.secret_id,
        run.token,
        if run.resumed {
            " (resuming the rotation in progress)"
        } else {
            ""
        }
    );
    out.push_str(&format!(
        "  {:<13} {:<14} {:<16} {:>9} {:>9}  {}\n",
        "step", "function", "outcome", "step ms", "total ms", "SM calls"
    ));
    for s in &run.steps {
        let total = s.elapsed.as_millis();
        match &s.result {
            Ok(r) => {
                out.push_str(&format!(
                    "  {:<13} {:<14} {:<16} {:>9} {:>9}  {}\n",
                    s.step.as_str(),
                    s.function,
                    r.outcome.as_str(),
                    r.duration_ms,
                    total,
                    r.secrets_manager_calls
                ));
                for w in &r.warnings {
                    out.push_str(&format!("    warning: {w}\n"));
                }
            }
            Err(e) => out.push_str(&format!(
                "  {:<13} {:<14} {:<16} {:>9} {:>9}  -\n    error: {e}\n",
                s.step.as_str(),
                s.function,
                "FAILED",
                "-",
                total
            )),
        }
    }
    out.push_str(&format!(
        "  Secrets Manager calls by the functions: {}\n",
        run.secrets_manager_calls()
    ));
    out
}
