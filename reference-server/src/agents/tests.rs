//! Admission, reuse, eviction and balance of the agent caches.

use proptest::prelude::*;

use super::*;
use crate::config::ServerConfig;

/// A 32 MB pool of the default model (256 blocks of 4 layers) with the 95% admission limit.
fn policy() -> CachePolicy {
    CachePolicy {
        geometry: ServerConfig::default()
            .pool(|p| p.cache_budget_mb = 32)
            .geometry(),
        admit_limit: 243,
        max_hot_agents: 64,
        no_cache: false,
        no_recovery: false,
    }
}

fn prompt(n: u32) -> Vec<u32> {
    (100..100 + n).collect()
}

#[test]
fn admission_reserves_prompt_plus_max_tokens() {
    let mut c = Caches::new(policy());
    let a = c.admit("a", &prompt(20), 100).unwrap();
    assert_eq!(a.reserved, 4);
    assert_eq!(a.reused, 0);
    let b = c.admit("b", &prompt(20), 300).unwrap();
    assert_eq!(b.reserved, 8, "320 tokens span two blocks in 4 layers");
    assert_eq!(c.figures().used_blocks, 12);
}

#[test]
fn sixty_requests_fit_and_the_sixty_first_is_refused() {
    let mut c = Caches::new(policy());
    let held: Vec<_> = (0..60)
        .map(|i| c.admit(&format!("agent{i}"), &prompt(20), 100).unwrap())
        .collect();
    let refusal = c.admit("late", &prompt(20), 100).unwrap_err();
    assert_eq!(
        refusal,
        Refusal::Exhausted {
            need: 4,
            used: 240,
            limit: 243
        }
    );
    for a in held {
        c.release(a);
    }
    assert_eq!(c.figures().used_blocks, 0);
    assert_eq!(c.figures().agents, 0);
}

#[test]
fn too_large_is_refused_before_anything() {
    let mut c = Caches::new(policy());
    let refusal = c.admit("a", &prompt(10), 65_536).unwrap_err();
    assert!(matches!(refusal, Refusal::TooLarge { limit: 243, .. }));
    assert_eq!(c.figures().used_blocks, 0);
}

#[test]
fn completion_keeps_what_was_used_and_frees_the_rest() {
    let mut c = Caches::new(policy());
    let a = c.admit("a", &prompt(20), 600).unwrap();
    assert_eq!(a.reserved, 12);
    c.complete(a, prompt(50), None);
    let f = c.figures();
    assert_eq!(
        (f.used_blocks, f.cached_blocks, f.idle_cached_agents),
        (4, 4, 1)
    );
}

#[test]
fn longest_common_prefix_is_reused_per_agent_only() {
    let mut c = Caches::new(policy());
    let a = c.admit("a", &prompt(30), 10).unwrap();
    c.complete(a, prompt(40), None);
    let again = c.admit("a", &prompt(60), 10).unwrap();
    assert_eq!(again.reused, 40);
    c.complete(again, prompt(70), None);
    let mut diverged = prompt(70);
    diverged[25] = 7;
    let d = c.admit("a", &diverged, 10).unwrap();
    assert_eq!(d.reused, 25);
    let other = c.admit("b", &prompt(60), 10).unwrap();
    assert_eq!(other.reused, 0, "another agent never reads a's cache");
    c.release(d);
    c.release(other);
}

#[test]
fn no_cache_fault_never_reuses() {
    let mut c = Caches::new(CachePolicy {
        no_cache: true,
        ..policy()
    });
    let a = c.admit("a", &prompt(30), 10).unwrap();
    c.complete(a, prompt(40), None);
    assert_eq!(c.admit("a", &prompt(60), 10).unwrap().reused, 0);
}

#[test]
fn idle_agents_are_evicted_lru_first_to_admit() {
    let mut c = Caches::new(policy());
    for i in 0..60 {
        let a = c.admit(&format!("old{i}"), &prompt(20), 100).unwrap();
        c.complete(a, prompt(120), None);
    }
    assert_eq!(c.figures().used_blocks, 240);
    let fresh = c.admit("fresh", &prompt(20), 100).unwrap();
    assert_eq!(c.figures().evictions, 1);
    assert!(
        !c.agents.contains_key("old0"),
        "least recently used went first"
    );
    assert!(c.agents.contains_key("old1"));
    c.release(fresh);
}

#[test]
fn hot_cap_evicts_beyond_the_limit() {
    let mut c = Caches::new(CachePolicy {
        max_hot_agents: 3,
        ..policy()
    });
    for i in 0..5 {
        let a = c.admit(&format!("a{i}"), &prompt(10), 10).unwrap();
        c.complete(a, prompt(20), None);
    }
    let f = c.figures();
    assert_eq!(
        (f.idle_cached_agents, f.evictions, f.used_blocks),
        (3, 2, 12)
    );
}

#[test]
fn no_recovery_fault_keeps_reservations_and_never_evicts() {
    let mut c = Caches::new(CachePolicy {
        no_recovery: true,
        max_hot_agents: 1,
        ..policy()
    });
    for i in 0..60 {
        let a = c.admit(&format!("a{i}"), &prompt(20), 100).unwrap();
        c.complete(a, prompt(21), None);
    }
    assert!(c.admit("new", &prompt(20), 100).is_err());
    assert_eq!(c.clear(), 60);
    assert_eq!(c.figures().used_blocks, 0);
}

#[test]
fn delete_during_flight_frees_everything_at_the_end() {
    let mut c = Caches::new(policy());
    let a = c.admit("a", &prompt(20), 100).unwrap();
    assert!(c.remove("a"));
    let b = c.admit("a", &prompt(20), 100).unwrap();
    c.complete(a, prompt(30), None);
    assert_eq!(
        c.figures().used_blocks,
        4,
        "stale completion freed its reservation"
    );
    c.complete(b, prompt(30), None);
    assert_eq!(c.figures().used_blocks, 4);
    assert!(c.remove("a"));
    assert!(!c.remove("a"));
    assert_eq!(c.figures().used_blocks, 0);
}

#[test]
fn other_context_is_another_agents() {
    let mut c = Caches::new(policy());
    let a = c.admit("a", &prompt(5), 10).unwrap();
    c.complete(a, prompt(6), Some("CANARY-a".to_owned()));
    assert_eq!(c.other_context("a"), None);
    let (_, canary) = c.other_context("b").unwrap();
    assert_eq!(canary.as_deref(), Some("CANARY-a"));
}

#[derive(Debug, Clone)]
enum Op {
    Admit { agent: u8, prompt: u16, max: u16 },
    Complete { which: usize, used: u16 },
    Release { which: usize },
    Remove { agent: u8 },
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..12, 0u16..600, 1u16..800).prop_map(|(agent, prompt, max)| Op::Admit { agent, prompt, max }),
        3 => (any::<usize>(), 0u16..1500).prop_map(|(which, used)| Op::Complete { which, used }),
        1 => any::<usize>().prop_map(|which| Op::Release { which }),
        1 => (0u8..12).prop_map(|agent| Op::Remove { agent }),
        1 => Just(Op::Clear),
    ]
}

proptest! {
    #[test]
    fn allocations_and_frees_always_balance(
        ops in proptest::collection::vec(op(), 1..200),
        hot in 1usize..8,
        no_cache in any::<bool>(),
        no_recovery in any::<bool>(),
    ) {
        let mut c = Caches::new(CachePolicy { max_hot_agents: hot, no_cache, no_recovery, ..policy() });
        let mut open: Vec<Admission> = Vec::new();
        for op in ops {
            match op {
                Op::Admit { agent, prompt: n, max } => {
                    if let Ok(a) = c.admit(&format!("agent{agent}"), &prompt(u32::from(n)), u32::from(max)) {
                        open.push(a);
                    }
                }
                Op::Complete { which, used } if !open.is_empty() => {
                    let a = open.swap_remove(which % open.len());
                    c.complete(a, prompt(u32::from(used)), None);
                }
                Op::Release { which } if !open.is_empty() => {
                    let a = open.swap_remove(which % open.len());
                    c.release(a);
                }
                Op::Remove { agent } => { c.remove(&format!("agent{agent}")); }
                Op::Clear => { c.clear(); }
                _ => {}
            }
            let f = c.figures();
            let reserved: u64 = open.iter().map(|a| a.reserved).sum();
            prop_assert!(f.used_blocks <= f.total_blocks);
            prop_assert!(f.used_blocks <= 243, "admission kept the limit");
            prop_assert_eq!(f.used_blocks, f.cached_blocks + reserved, "every block has one holder");
        }
        for a in open.drain(..) {
            c.release(a);
        }
        c.clear();
        let f = c.figures();
        prop_assert_eq!(f.used_blocks, 0);
        prop_assert_eq!(f.cached_blocks, 0);
        prop_assert_eq!(f.agents, 0);
    }
}
