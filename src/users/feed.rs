//! The hand-off from the ICWS source to user sync: what CIC said about its directory, merged per
//! user until user sync takes it.

use std::collections::BTreeMap;

use serde_json::Value;

/// What the ICWS source tells user sync.
#[derive(Debug, Clone, PartialEq)]
pub enum DirectoryChange {
    /// The whole directory (read in pages, or a subscription's first message).
    Full(Vec<Value>),
    /// Users added or changed (each whole, as selected).
    Upsert(Vec<Value>),
    /// Users removed (their ids).
    Removed(Vec<String>),
}

#[derive(Default)]
struct Pending {
    full: Option<Vec<Value>>,
    /// By user id: the user as it is now, or `None` when removed.
    changed: BTreeMap<String, Option<Value>>,
}

/// The hand-off from the ICWS source to user sync. It never blocks the source (which also reads
/// interactions): changes not yet taken are merged per user — the latest state of each wins, a
/// whole directory replaces everything before it — so it holds at most one directory's worth.
#[derive(Default)]
pub struct DirectoryFeed {
    pending: std::sync::Mutex<Pending>,
    ready: tokio::sync::Notify,
}

impl DirectoryFeed {
    /// Hands over a change.
    pub fn push(&self, change: DirectoryChange) {
        {
            let mut p = crate::locks::lock(&self.pending);
            match change {
                DirectoryChange::Full(users) => {
                    p.full = Some(users);
                    p.changed.clear();
                }
                DirectoryChange::Upsert(users) => {
                    for u in users {
                        if let Some(id) = cic_id(&u).map(str::to_string) {
                            p.changed.insert(id, Some(u));
                        }
                    }
                }
                DirectoryChange::Removed(ids) => {
                    for id in ids {
                        p.changed.insert(id, None);
                    }
                }
            }
        }
        self.ready.notify_one();
    }

    /// The changes handed over since the last take, in an order that keeps their meaning.
    pub fn take(&self) -> Vec<DirectoryChange> {
        let p = std::mem::take(&mut *crate::locks::lock(&self.pending));
        let mut out = Vec::new();
        if let Some(full) = p.full {
            out.push(DirectoryChange::Full(full));
        }
        let (mut upserts, mut removed) = (Vec::new(), Vec::new());
        for (id, u) in p.changed {
            match u {
                Some(u) => upserts.push(u),
                None => removed.push(id),
            }
        }
        if !upserts.is_empty() {
            out.push(DirectoryChange::Upsert(upserts));
        }
        if !removed.is_empty() {
            out.push(DirectoryChange::Removed(removed));
        }
        out
    }

    /// Waits until something was handed over (returns at once if it was since the last wait).
    pub async fn changed(&self) {
        self.ready.notified().await;
    }
}

/// The id of a CIC configuration object.
pub fn cic_id(user: &Value) -> Option<&str> {
    user["configurationId"]["id"]
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn u(id: &str, name: &str) -> Value {
        json!({"configurationId": {"id": id, "displayName": name}})
    }

    #[test]
    fn the_feed_keeps_the_latest_of_each_user_and_a_whole_directory_replaces_what_came_before() {
        let feed = DirectoryFeed::default();
        feed.push(DirectoryChange::Upsert(vec![u("a", "1")]));
        feed.push(DirectoryChange::Upsert(vec![u("a", "2"), u("b", "1")]));
        feed.push(DirectoryChange::Removed(vec!["b".into()]));
        assert_eq!(
            feed.take(),
            vec![
                DirectoryChange::Upsert(vec![u("a", "2")]),
                DirectoryChange::Removed(vec!["b".into()])
            ]
        );
        assert!(feed.take().is_empty());
        feed.push(DirectoryChange::Upsert(vec![u("c", "1")]));
        feed.push(DirectoryChange::Full(vec![u("a", "3")]));
        feed.push(DirectoryChange::Upsert(vec![u("d", "1")]));
        assert_eq!(
            feed.take(),
            vec![
                DirectoryChange::Full(vec![u("a", "3")]),
                DirectoryChange::Upsert(vec![u("d", "1")])
            ]
        );
    }
}
