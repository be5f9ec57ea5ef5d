//! The final figures of a traffic run, shared by `fanout` and `soak`, and
//! the verdict: a run fails when an acknowledged pixel was lost, delivered
//! twice, or is missing from the board.

use crate::report::{Report, round3};
use crate::stats::percentiles;
use crate::traffic::TrafficOutcome;

/// Adds the outcome's figures to `report` and sets its verdict.
pub fn summarize(report: &mut Report, outcome: &mut TrafficOutcome) {
    let c = outcome.counts;
    let acc = &mut outcome.accounting;
    report.add("writers", outcome.writers);
    report.add("observers", outcome.observers);
    report.add(
        "board_size",
        format!("{}x{}", outcome.hello.width, outcome.hello.height),
    );
    report.add("send_secs", round3(outcome.send_window.as_secs_f64()));
    report.add("drain_used_secs", round3(outcome.drain_used.as_secs_f64()));
    report.add("drained", outcome.drained);

    report.add("placements_planned", c.planned);
    report.add("placements_sent", c.sent);
    report.add("placements_acked", c.acked);
    report.add("placements_rejected", c.rejected);
    report.add("placements_unanswered", c.pending());
    report.add("placements_not_sent", c.planned - c.sent);
    report.add("writer_backlog_drops", c.backlog_drops);
    report.add("writer_gone_drops", c.writer_gone);
    report.add("errors_by_code", &outcome.rejected_by_code);
    report.add("stray_answers", c.stray_answers);

    let expected = c.acked * outcome.observers as u64;
    report.add("deliveries_expected", expected);
    report.add("deliveries_received", acc.delivered);
    report.add("lost", acc.lost);
    report.add("duplicates", outcome.duplicates);
    report.add("out_of_order", outcome.out_of_order);
    report.add("late", outcome.late);
    report.add("resyncs", outcome.resyncs);
    report.add("connections_ended_early", &outcome.ended_early);
    report.add("decode_errors", outcome.decode_errors);
    report.add("unread_batches", outcome.unread_batches);

    let latency = match &mut acc.all_samples {
        Some(all) => percentiles(all),
        None => acc.histogram.percentiles(),
    };
    report.add_latency("latency_ms", latency);
    let send_secs = outcome.send_window.as_secs_f64().max(1e-3);
    let total_secs = (outcome.send_window + outcome.drain_used)
        .as_secs_f64()
        .max(1e-3);
    report.add("placement_rate", round3(c.acked as f64 / send_secs));
    // Over sending and draining: the last deliveries land after the last send.
    report.add("delivery_rate", round3(acc.delivered as f64 / total_secs));
    // What one observer's link carried per second, and per pixel event.
    let observers = (outcome.observers as f64).max(1.0);
    report.add(
        "observer_bytes_per_sec",
        round3(outcome.observer_bytes as f64 / observers / total_secs),
    );
    report.add(
        "observer_bytes_per_event",
        round3(outcome.observer_bytes as f64 / (acc.delivered as f64).max(1.0)),
    );

    let board_failed = match &outcome.board {
        Ok(b) => {
            report.add("board_snapshot_seq", b.snapshot_seq);
            report.add("board_pixels_compared", b.pixels_compared);
            report.add("board_mismatches", b.mismatches);
            report.add("board_skipped_foreign", b.skipped_foreign);
            report.add("board_writes_after_snapshot", b.writes_after_snapshot);
            for example in &b.examples {
                report.note(format!("board mismatch: {example}"));
            }
            b.mismatches > 0
        }
        Err(e) => {
            report.add("board_mismatches", None::<u64>);
            report.note(format!("the board could not be checked: {e}"));
            true
        }
    };

    if c.acked == 0 {
        report.note("nothing was acknowledged, so nothing was measured");
    }
    if !outcome.drained {
        report.note("the drain ended before every answer and delivery had come");
    }
    if c.backlog_drops > 0 {
        report.note(format!(
            "{} placements were skipped because a writer's queue was full: \
             the gateway is not keeping up with --rate over these writers",
            c.backlog_drops
        ));
    }
    if c.writer_gone > 0 {
        report.note(format!(
            "{} placements were skipped because their writer's connection had ended",
            c.writer_gone
        ));
    }
    report.failed = acc.lost > 0 || outcome.duplicates > 0 || board_failed;
}
