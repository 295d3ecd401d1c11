//! Random request streams from two domains (a cheap deterministic fuzz):
//! nothing panics and the tree stays consistent.

use crate::fake::*;
use crate::wire::ty;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

const PATHS: &[&str] = &[
    "data",
    "data/a",
    "data/a/b",
    "data/a/b/c",
    "data/b",
    "control/shutdown",
    "/local/domain/1/data/a",
    "/local/domain/2/data/a/b",
    "/local/domain/1/data",
    "/local/domain/2",
    "/",
    "@releaseDomain",
    "x/y",
];
const PERMS: &[&str] = &["n1", "n2", "r1", "b2", "w1", "r2", "b0"];

#[test]
fn random_requests_keep_the_tree_consistent() {
    for seed in 1..=6u64 {
        let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut w = World::new();
        let mut txs: Vec<(u16, u32)> = Vec::new();
        for step in 0..1500 {
            let dom = 1 + (r.next() % 2) as u16;
            let path = r.pick(PATHS);
            let tx = match r.next() % 3 {
                0 => txs
                    .iter()
                    .filter(|(d, _)| *d == dom)
                    .map(|(_, t)| *t)
                    .next_back()
                    .unwrap_or(0),
                _ => 0,
            };
            let (t, payload) = match r.next() % 12 {
                0 => (ty::READ, z(path)),
                1 | 2 => (ty::WRITE, wv(path, r.pick(&["", "v", "value"]))),
                3 => (ty::MKDIR, z(path)),
                4 => (ty::RM, z(path)),
                5 => (ty::DIRECTORY, z(path)),
                6 => {
                    let n = 1 + (r.next() % 3) as usize;
                    let mut parts = vec![path];
                    for _ in 0..n {
                        parts.push(r.pick(PERMS));
                    }
                    (ty::SET_PERMS, zs(&parts))
                }
                7 => (ty::TRANSACTION_START, z("")),
                8 => (ty::TRANSACTION_END, z(r.pick(&["T", "F", "T"]))),
                9 => (ty::WATCH, zs(&[path, r.pick(&["a", "b"])])),
                10 => (ty::UNWATCH, zs(&[path, r.pick(&["a", "b"])])),
                _ => (ty::RESET_WATCHES, z("")),
            };
            let m = w.call(dom, t, tx, &payload);
            match t {
                ty::TRANSACTION_START if m.ty == t => {
                    let id = m.text().trim_end_matches('\0').parse().unwrap();
                    txs.push((dom, id));
                }
                ty::TRANSACTION_END => txs.retain(|x| *x != (dom, tx)),
                ty::RESET_WATCHES if m.ty == t => txs.retain(|(d, _)| *d != dom),
                _ => {}
            }
            w.events(1);
            w.events(2);
            w.xs.assert_consistent();
            if step % 500 == 499 {
                w.xs.release_domain(2);
                txs.retain(|(d, _)| *d != 2);
                w.xs.assert_consistent();
                w.introduce(2);
            }
        }
    }
}
