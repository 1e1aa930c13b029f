//! `handshake_timeout_ms`: the parent returns from fork only after the child
//! finished its child phase, or the timeout passed; no descriptor is left
//! behind in either process. Ordering facts, not timings.

mod common;

use common::*;

fn handshake_run(s: &Scratch, mode: &str, timeout_ms: u32, call: &str) -> Outcome {
    let settings = if timeout_ms > 0 {
        format!("handshake_timeout_ms = {timeout_ms}")
    } else {
        String::new()
    };
    // Logging to stderr: a log file kept open by forkguard would show up as
    // a descriptor that was not there before the fork.
    let text = format!(
        "version = 1\n[settings]\nlog = \"stderr\"\n{settings}\n{}",
        calls(&[("prepare", "fgt_prepare"), ("child", call)])
    );
    let cfg = s.config(&format!("hs-{mode}-{timeout_ms}.toml"), &text);
    let marker = s.path(&format!("marker-{mode}-{timeout_ms}"));
    let mut cmd = fixture_cmd(s, "handshake", &[mode], &cfg);
    cmd.env("FGT_MARKER", &marker);
    let out = run(s, cmd, TIMEOUT);
    out.assert_success().assert_config_accepted();
    // Proves the config was applied (a rejected config runs unguarded).
    assert!(
        s.trace().count("prepare") >= 1,
        "config not applied:\n{}",
        out.dump()
    );
    out
}

/// Asserts the fixture found the same descriptors after the fork as before
/// it, in the parent and in the child.
#[track_caller]
fn assert_no_descriptor_left(out: &Outcome) {
    assert_eq!(
        out.get("", "parent_fds_same"),
        "1",
        "descriptor left in the parent:\n{}",
        out.dump()
    );
    assert_eq!(
        out.get("", "child_fds_same"),
        "1",
        "descriptor left in the child:\n{}",
        out.dump()
    );
}

#[test]
fn without_handshake_parent_does_not_wait() {
    // Control: shows the marker check can fail.
    let s = Scratch::new("hsoff");
    let out = handshake_run(&s, "marker", 0, "fgt_slow_marker");
    assert_eq!(out.get("", "marker_at_return"), "0", "{}", out.dump());
    assert_eq!(out.get("", "marker_after_wait"), "1", "{}", out.dump());
}

#[test]
fn parent_returns_after_child_phase_finished() {
    let s = Scratch::new("hswait");
    let out = handshake_run(&s, "marker", 10_000, "fgt_slow_marker");
    assert_eq!(
        out.get("", "marker_at_return"),
        "1",
        "fork returned in the parent before the child phase finished:\n{}",
        out.dump()
    );
    assert_no_descriptor_left(&out);
}

#[test]
fn slow_child_does_not_hold_parent_beyond_timeout() {
    // The child phase cannot finish until the parent's fork has returned (it
    // waits for a byte the parent writes afterwards): with a handshake that
    // waited for ever, this would deadlock and hit the run's deadline.
    let s = Scratch::new("hsgate");
    let out = handshake_run(&s, "gate", 300, "fgt_gate_wait");
    assert_eq!(out.get("", "marker_at_return"), "0", "{}", out.dump());
    assert_eq!(
        out.get("", "marker_after_wait"),
        "1",
        "the child phase never finished:\n{}",
        out.dump()
    );
    assert_no_descriptor_left(&out);
}
