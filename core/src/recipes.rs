//! Config entries that `forkguard audit --suggest` writes for hazards it
//! recognises (SPEC 8.8), kept here so that the command, the docs and the
//! tests share one text. Each is a valid config fragment after `version = 1`.

/// A GNU OpenMP pool alive at a fork (the audit line says "GNU OpenMP pool
/// alive", JSON `openmp_pool`): release it before the fork.
pub const OPENMP: &str = "\
# GNU OpenMP: a live libgomp pool at the fork makes every child's first
# parallel region hang; release it before the fork (config/openmp.toml).
[[call]]
phase = \"prepare\"
symbol = \"omp_pause_resource_all\"
args = [2]          # omp_pause_hard
optional = true
";

/// The entry for an audit that saw a live OpenMP pool.
pub fn openmp_entry() -> &'static str {
    OPENMP
}

#[cfg(test)]
mod tests {
    use crate::plan::{ActionKind, Phase};
    use crate::Plan;

    #[test]
    fn openmp_entry_is_valid_and_pauses_hard() {
        let p = Plan::parse("s", &format!("version = 1\n{}", super::openmp_entry())).unwrap();
        let ActionKind::Call(c) = &p.actions[0].kind else {
            panic!("not a call")
        };
        assert_eq!(
            (c.phase, c.symbol.name.as_str(), c.args.as_slice()),
            (Phase::Prepare, "omp_pause_resource_all", &[2][..])
        );
        assert!(c.symbol.optional);
    }
}
