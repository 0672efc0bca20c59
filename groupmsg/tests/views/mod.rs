//! The virtual-synchrony check shared by the model tests (in-process bus and groupd).

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;

/// Any two views (a member's id and the events it saw, in order) order the events they share
/// the same way, and between their first and last shared event saw exactly the same events:
/// one sequence, with membership changes at the same place in it.
pub(crate) fn agree<S: Eq + Hash + Debug>(views: &[(u32, &[S])]) {
    for (i, &(pa, a)) in views.iter().enumerate() {
        let index: HashMap<&S, usize> = a.iter().enumerate().map(|(k, e)| (e, k)).collect();
        for &(pb, b) in &views[i + 1..] {
            let shared: Vec<(usize, usize)> = b
                .iter()
                .enumerate()
                .filter_map(|(kb, e)| index.get(e).map(|&ka| (ka, kb)))
                .collect();
            let (Some(first), Some(last)) = (shared.first(), shared.last()) else { continue };
            assert_eq!(
                &a[first.0..=last.0],
                &b[first.1..=last.1],
                "views of {pa} and {pb} disagree between their first and last shared event"
            );
        }
    }
}
