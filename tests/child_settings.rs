//! `[child]` settings (SPEC §3), each checked from inside the child, and the
//! parent-death-signal race.

mod common;

use common::*;

const ALL_SETTINGS: &str = "
[child]
parent_death_signal = \"TERM\"
reset_signal_mask = true
reset_signal_handlers = true
new_session = true
oom_score_adj = 500
name = \"fgtworker\"
";

/// Runs `childcheck settings` under a config of `[child] child_table`,
/// written to `NAME.toml`.
fn run_childcheck(s: &Scratch, name: &str, child_table: &str) -> Outcome {
    let text = format!("{}{child_table}", header(&s.path("fg.log"), ""));
    let cfg = s.config(&format!("{name}.toml"), &text);
    let out = run(
        s,
        fixture_cmd(s, "childcheck", &["settings"], &cfg),
        TIMEOUT,
    );
    out.assert_success().assert_config_accepted();
    out
}

#[test]
fn without_child_settings_the_child_inherits_everything() {
    // The control: proves the fixture sees the inherited state, so the test
    // below can fail.
    let s = Scratch::new("childctl");
    let out = run_childcheck(&s, "none", "");
    let child = out.kv("child:");
    let parent = out.kv("parent:");
    assert_eq!(child["pdeathsig"], "0", "{}", out.dump());
    assert_eq!(child["name"], "childcheck", "{}", out.dump());
    assert_eq!(child["sid_is_pid"], "0", "{}", out.dump());
    assert_eq!(child["usr1_blocked"], "1", "{}", out.dump());
    assert_eq!(child["usr2_default"], "0", "{}", out.dump());
    assert_eq!(child["oom"], parent["oom"], "{}", out.dump());
}

#[test]
fn every_child_setting_applies_in_the_child_only() {
    let s = Scratch::new("childset");
    let out = run_childcheck(&s, "all", ALL_SETTINGS);
    let child = out.kv("child:");
    assert_eq!(
        child["pdeathsig"],
        libc::SIGTERM.to_string(),
        "parent_death_signal:\n{}",
        out.dump()
    );
    assert_eq!(child["name"], "fgtworker", "name:\n{}", out.dump());
    assert_eq!(child["sid_is_pid"], "1", "new_session:\n{}", out.dump());
    assert_eq!(
        child["usr1_blocked"],
        "0",
        "reset_signal_mask:\n{}",
        out.dump()
    );
    assert_eq!(
        child["usr2_default"],
        "1",
        "reset_signal_handlers:\n{}",
        out.dump()
    );
    assert_eq!(child["oom"], "500", "oom_score_adj:\n{}", out.dump());
    // The parent is left alone.
    let parent = out.kv("parent:");
    assert_eq!(parent["pdeathsig"], "0", "{}", out.dump());
    assert_eq!(parent["name"], "childcheck", "{}", out.dump());
    assert_eq!(parent["usr1_blocked"], "1", "{}", out.dump());
    assert_eq!(parent["usr2_default"], "0", "{}", out.dump());
    assert_ne!(parent["oom"], "500", "{}", out.dump());

    let log = Log::read(&s.path("fg.log"));
    log.assert_all_parse();
    let kids = log.children();
    assert_eq!(kids.len(), 1, "{}", log.raw);
    let LogLine::Child { summary, .. } = kids[0] else {
        unreachable!()
    };
    assert_eq!(summary.failed, 0, "a child setting failed:\n{}", log.raw);
}

#[test]
fn parent_death_signal_spellings() {
    let s = Scratch::new("pdeathnames");
    for (i, (spelling, want)) in [
        ("\"SIGKILL\"", libc::SIGKILL),
        ("\"HUP\"", libc::SIGHUP),
        ("10", 10),
    ]
    .into_iter()
    .enumerate()
    {
        let out = run_childcheck(
            &s,
            &format!("sig{i}"),
            &format!("[child]\nparent_death_signal = {spelling}\n"),
        );
        assert_eq!(
            out.get("child:", "pdeathsig"),
            want.to_string(),
            "parent_death_signal = {spelling}\n{}",
            out.dump()
        );
    }
}

fn pdeath_race(s: &Scratch, disable: bool) -> Outcome {
    let text = format!(
        "{}[child]\nparent_death_signal = \"TERM\"\n",
        header(&s.path("fg.log"), "")
    );
    let cfg = s.config("fg.toml", &text);
    let mut cmd = fixture_cmd(s, "pdeath", &[], &cfg);
    if disable {
        cmd.env("FORKGUARD_DISABLE", "1");
    }
    let out = run(s, cmd, TIMEOUT);
    out.assert_success().assert_config_accepted();
    assert_eq!(out.get("", "middle-status"), "0", "{}", out.dump());
    out
}

#[test]
fn parent_death_signal_when_parent_died_before_prctl() {
    // Control first: with forkguard disabled the grandchild survives, so the
    // fixture really does outlive its parent.
    let s = Scratch::new("pdeathrace");
    let ctl = pdeath_race(&s, true);
    assert_eq!(
        ctl.kv("").get("grandchild-exit").map(String::as_str),
        Some("0"),
        "control:\n{}",
        ctl.dump()
    );

    s.reset_trace();
    let out = pdeath_race(&s, false);
    assert_eq!(
        out.kv("").get("grandchild-signal").map(String::as_str),
        Some("15"),
        "the child whose parent died before PR_SET_PDEATHSIG must get SIGTERM at once:\n{}\ntrace:\n{}",
        out.dump(),
        s.trace().raw
    );
    assert_eq!(s.trace().count("grandchild-survived"), 0);
}
