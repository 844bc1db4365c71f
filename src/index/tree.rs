//! The metric-name tree: a persistent (copy-on-write) tree of interned path elements, and the
//! glob search over one immutable version of it.
//!
//! Every node is an entry in its parent's child map, `Arc<str>` name → [`TreeNode`]; a node is
//! a *branch* when it has a child map (a directory, possibly empty) and a *leaf* when its flag
//! says a metric of that exact name exists (a whisper file); it can be both (`a.b` is a metric
//! and `a.b.c` is one too). Child maps sit behind `Arc`s, so a [`Snapshot`] is a clone of the
//! root pointer and shares every node with the [`Tree`] it came from. The tree is changed only
//! by its owner (the index thread): `Arc::make_mut` copies a child map the first time it changes
//! after a snapshot was taken, so publishing costs the fan-out of the maps on changed paths, and
//! a snapshot, once taken, never changes.
//!
//! Element strings are interned: all the `cpu`s of a million hosts share one allocation, so a
//! node costs its map entry (32 bytes plus hash-table overhead), and a branch its map.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use super::glob::Pattern;
use super::IndexError;

/// A node's children, by name.
pub(crate) type Children = hashbrown::HashMap<Arc<str>, TreeNode>;

/// One node, stored in its parent's [`Children`].
#[derive(Clone, Debug, Default)]
pub(crate) struct TreeNode {
    /// Some exactly when the node is a branch (an empty map for an empty directory).
    children: Option<Arc<Children>>,
    /// Whether a metric of this exact name exists.
    leaf: bool,
}

/// What an inserted name is: a metric (a file) or only a branch (a directory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Leaf,
    Branch,
}

/// How many nodes of each kind a tree holds (a node both leaf and branch counts in both).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Distinct paths.
    pub(crate) nodes: usize,
    pub(crate) leaves: usize,
    pub(crate) branches: usize,
}

/// One entry of a find result: graphite-web's `LeafNode` or `BranchNode`.
///
/// A path that is both a metric and a directory gives two entries, a branch and a leaf, as
/// graphite-web's `STORE.find` does (its finder yields a `BranchNode` for the directory and a
/// `LeafNode` for the file, and `_list_nodes` keeps both). The formats decide what to show:
/// `treejson` keeps the first entry of each name (the branch, as graphite-web's order puts
/// branches first), `json`/`pickle`/`completer` list both.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Node {
    /// The full dotted path.
    pub path: String,
    /// A metric (true) or a branch (false).
    pub is_leaf: bool,
}

impl Node {
    /// The last element of the path: graphite-web's `node.name`.
    pub fn name(&self) -> &str {
        self.path.rsplit('.').next().unwrap_or(&self.path)
    }
}

/// Sorts find results as graphite-web's `find_view` does (`matches.sort(key=lambda node:
/// node.name)`): by name, code point by code point (UTF-8 bytes sort the same way). Among
/// equal names graphite-web's order is random (it shuffles before that stable sort) except that
/// one path's branch precedes its leaf; here branches come first, then paths in order, so that
/// `treejson`, which keeps the first entry of each name, always keeps the branch.
pub(crate) fn sort_nodes(nodes: &mut Vec<Node>) {
    // The name's offset is found once per entry rather than twice per comparison.
    let mut keyed: Vec<(usize, Node)> =
        nodes.drain(..).map(|node| (node.path.rfind('.').map_or(0, |dot| dot + 1), node)).collect();
    keyed.sort_unstable_by(|(a_name, a), (b_name, b)| {
        a.path[*a_name..].cmp(&b.path[*b_name..]).then(a.is_leaf.cmp(&b.is_leaf)).then_with(|| a.path.cmp(&b.path))
    });
    nodes.extend(keyed.into_iter().map(|(_, node)| node));
}

/// The mutable tree, owned by the index thread.
pub(crate) struct Tree {
    root: Arc<Children>,
    /// Every distinct element string, shared by all nodes of that name.
    interner: HashSet<Arc<str>>,
    counts: Counts,
}

impl fmt::Debug for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tree").field("counts", &self.counts).field("interned", &self.interner.len()).finish()
    }
}

impl Tree {
    pub(crate) fn new() -> Tree {
        Tree { root: Arc::default(), interner: HashSet::new(), counts: Counts::default() }
    }

    /// Adds `name` (a valid dotted name: no empty element) as a leaf or a branch, with every
    /// prefix as a branch. Returns whether anything changed; a name already there costs one
    /// walk and copies nothing.
    pub(crate) fn insert(&mut self, name: &str, kind: Kind) -> bool {
        if lookup(&self.root, name).is_some_and(|node| node.has(kind)) {
            return false;
        }
        let Tree { root, interner, counts } = self;
        let mut children = root;
        let mut elements = name.split('.').peekable();
        while let Some(element) = elements.next() {
            let map = Arc::make_mut(children);
            if !map.contains_key(element) {
                map.insert(intern(interner, element), TreeNode::default());
                counts.nodes += 1;
            }
            let node = map.get_mut(element).expect("present: inserted just above");
            if elements.peek().is_none() && kind == Kind::Leaf {
                if !node.leaf {
                    node.leaf = true;
                    counts.leaves += 1;
                }
                break;
            }
            if node.children.is_none() {
                node.children = Some(Arc::default());
                counts.branches += 1;
            }
            children = node.children.as_mut().expect("a branch: made one just above");
        }
        true
    }

    /// The current version, sharing every node with the tree.
    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot { root: Arc::clone(&self.root), counts: self.counts }
    }
}

/// The shared copy of `element`, made on first sight.
fn intern(interner: &mut HashSet<Arc<str>>, element: &str) -> Arc<str> {
    if let Some(shared) = interner.get(element) {
        return Arc::clone(shared);
    }
    let shared: Arc<str> = Arc::from(element);
    interner.insert(Arc::clone(&shared));
    shared
}

impl TreeNode {
    fn has(&self, kind: Kind) -> bool {
        match kind {
            Kind::Leaf => self.leaf,
            Kind::Branch => self.children.is_some(),
        }
    }
}

/// The node at a dotted path.
fn lookup<'a>(root: &'a Children, name: &str) -> Option<&'a TreeNode> {
    let mut elements = name.split('.');
    let mut node = root.get(elements.next()?)?;
    for element in elements {
        node = node.children.as_ref()?.get(element)?;
    }
    Some(node)
}

/// One immutable version of the tree. Finds run on it without any lock.
#[derive(Clone)]
pub struct Snapshot {
    root: Arc<Children>,
    counts: Counts,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot").field("counts", &self.counts).finish()
    }
}

/// A state of the search: match `elements[element..]` below the node owning `children`.
struct Frame<'a> {
    children: &'a Children,
    element: usize,
    /// The node's path in `Search::segments` (`NO_SEGMENT` for the root).
    segment: u32,
}

const NO_SEGMENT: u32 = u32::MAX;

/// The working state of one find.
struct Search<'a> {
    /// Each node on the way: (its parent's segment, its name). Paths are rebuilt from it only
    /// for results, so visiting a node does not allocate a string.
    segments: Vec<(u32, &'a str)>,
    results: Vec<Node>,
    limit: usize,
}

impl<'a> Search<'a> {
    fn segment(&mut self, parent: u32, name: &'a str) -> u32 {
        let index = self.segments.len() as u32;
        self.segments.push((parent, name));
        index
    }

    /// Adds `parent.name` with the flags it has (a branch entry, a leaf entry, or both).
    fn emit(&mut self, parent: u32, name: &str, node: &TreeNode) -> Result<(), IndexError> {
        let mut parts = vec![name];
        let mut at = parent;
        while at != NO_SEGMENT {
            let (up, part) = self.segments[at as usize];
            parts.push(part);
            at = up;
        }
        parts.reverse();
        let path = parts.join(".");
        if node.children.is_some() {
            self.results.push(Node { path: path.clone(), is_leaf: false });
        }
        if node.leaf {
            self.results.push(Node { path, is_leaf: true });
        }
        if self.results.len() > self.limit {
            return Err(IndexError::TooManyNodes { limit: self.limit });
        }
        Ok(())
    }
}

impl Snapshot {
    /// An empty tree.
    pub(crate) fn empty() -> Snapshot {
        Snapshot { root: Arc::default(), counts: Counts::default() }
    }

    pub(crate) fn counts(&self) -> Counts {
        self.counts
    }

    /// Whether a metric of this exact name exists.
    pub fn contains(&self, name: &str) -> bool {
        lookup(&self.root, name).is_some_and(|node| node.leaf)
    }

    #[cfg(test)]
    fn contains_kind(&self, name: &str, kind: Kind) -> bool {
        lookup(&self.root, name).is_some_and(|node| node.has(kind))
    }

    /// How many metrics (leaves) this version holds.
    pub fn n_leaves(&self) -> usize {
        self.counts.leaves
    }

    /// The nodes `pattern` matches, sorted as graphite-web sorts them (see [`Node`] for a path
    /// that is both a leaf and a branch), or [`IndexError::TooManyNodes`] as soon as there are
    /// more than `limit` entries.
    ///
    /// Work: every (node, element) state at most once, so at most the tree's nodes times the
    /// pattern's elements child visits, and usually only the nodes on matching paths. An
    /// element of literals only (`{web01,web02}`) is looked up, not scanned.
    pub fn find(&self, pattern: &Pattern, limit: usize) -> Result<Vec<Node>, IndexError> {
        let mut matched: Vec<(&Arc<str>, &TreeNode)> = Vec::new();
        let elements = pattern.elements();
        let mut search = Search { segments: Vec::new(), results: Vec::new(), limit };
        let mut visited: HashSet<(usize, usize)> = HashSet::new();
        let mut stack = vec![Frame { children: &self.root, element: 0, segment: NO_SEGMENT }];
        while let Some(frame) = stack.pop() {
            if pattern.revisits() && !visited.insert((frame.children as *const Children as usize, frame.element)) {
                continue;
            }
            let element = &elements[frame.element];
            let last = frame.element + 1 == elements.len();
            if element.globstar {
                if last {
                    // One or more levels: every node below, each emitted once, since every
                    // node is reached from its parent only.
                    for (name, node) in frame.children.iter() {
                        search.emit(frame.segment, name, node)?;
                        if let Some(children) = &node.children {
                            let segment = search.segment(frame.segment, name);
                            stack.push(Frame { children, element: frame.element, segment });
                        }
                    }
                    continue;
                }
                // Zero levels, then one more level for each branch below.
                stack.push(Frame { children: frame.children, element: frame.element + 1, segment: frame.segment });
                for (name, node) in frame.children.iter() {
                    if let Some(children) = &node.children {
                        let segment = search.segment(frame.segment, name);
                        stack.push(Frame { children, element: frame.element, segment });
                    }
                }
            }
            matched.clear();
            if element.is_literal_only() {
                matched.extend(element.literals.iter().filter_map(|literal| frame.children.get_key_value(&**literal)));
            } else {
                matched.extend(frame.children.iter().filter(|(name, _)| element.matches(name)));
            }
            for &(name, node) in &matched {
                if last {
                    search.emit(frame.segment, name, node)?;
                } else if let Some(children) = &node.children {
                    let segment = search.segment(frame.segment, name);
                    stack.push(Frame { children, element: frame.element + 1, segment });
                }
            }
        }
        let mut results = search.results;
        sort_nodes(&mut results);
        results.dedup();
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(names: &[&str]) -> Tree {
        let mut tree = Tree::new();
        for name in names {
            tree.insert(name, Kind::Leaf);
        }
        tree
    }

    fn found(snapshot: &Snapshot, pattern: &str) -> Vec<(String, bool)> {
        let pattern = Pattern::parse(pattern).expect("valid pattern");
        snapshot
            .find(&pattern, usize::MAX)
            .expect("within the limit")
            .into_iter()
            .map(|n| (n.path, n.is_leaf))
            .collect()
    }

    #[test]
    fn counts_and_idempotence() {
        let mut t = tree(&["a.b.c", "a.b.d", "a.x"]);
        assert_eq!(t.counts, Counts { nodes: 5, leaves: 3, branches: 2 });
        assert!(!t.insert("a.b.c", Kind::Leaf));
        assert!(!t.insert("a.b", Kind::Branch));
        assert!(t.insert("a.b", Kind::Leaf));
        assert_eq!(t.counts, Counts { nodes: 5, leaves: 4, branches: 2 });
        assert!(t.insert("e", Kind::Branch));
        assert_eq!(t.counts, Counts { nodes: 6, leaves: 4, branches: 3 });
        assert!(t.snapshot().contains("a.b"));
        assert!(!t.snapshot().contains("e"));
        assert!(t.snapshot().contains_kind("e", Kind::Branch));
    }

    #[test]
    fn strings_are_interned() {
        let t = tree(&["h1.cpu", "h2.cpu", "h3.cpu.cpu"]);
        assert_eq!(t.interner.len(), 4);
        let snapshot = t.snapshot();
        let cpu = |host: &str| {
            let children = snapshot.root.get(host).and_then(|n| n.children.clone()).expect("branch");
            let (name, _) = children.get_key_value("cpu").expect("child");
            Arc::clone(name)
        };
        assert!(Arc::ptr_eq(&cpu("h1"), &cpu("h2")));
    }

    #[test]
    fn snapshots_do_not_change() {
        let mut t = tree(&["a.b"]);
        let before = t.snapshot();
        t.insert("a.c", Kind::Leaf);
        t.insert("z", Kind::Leaf);
        assert_eq!(found(&before, "**"), vec![("a".into(), false), ("a.b".into(), true)]);
        assert_eq!(found(&t.snapshot(), "a.*").len(), 2);
        assert_eq!(before.counts().leaves, 1);
    }

    #[test]
    fn leaf_and_branch_at_one_path() {
        let t = tree(&["a.b", "a.b.c"]);
        assert_eq!(found(&t.snapshot(), "a.*"), vec![("a.b".into(), false), ("a.b".into(), true)]);
        assert_eq!(found(&t.snapshot(), "a.b"), vec![("a.b".into(), false), ("a.b".into(), true)]);
    }

    #[test]
    fn empty_elements_match_nothing() {
        let t = tree(&["a.b"]);
        assert!(found(&t.snapshot(), "a..b").is_empty());
        assert!(found(&t.snapshot(), "a.").is_empty());
    }

    #[test]
    fn limit_counts_entries() {
        let t = tree(&["a.b", "a.b.c", "a.d"]);
        let pattern = Pattern::parse("a.*").expect("valid");
        assert_eq!(t.snapshot().find(&pattern, 3).map(|n| n.len()), Ok(3));
        assert_eq!(t.snapshot().find(&pattern, 2), Err(IndexError::TooManyNodes { limit: 2 }));
        assert_eq!(t.snapshot().find(&pattern, 0), Err(IndexError::TooManyNodes { limit: 0 }));
        let none = Pattern::parse("x.*").expect("valid");
        assert_eq!(t.snapshot().find(&none, 0), Ok(vec![]));
    }
}
