//! The `roles` section: grants, inheritance (unknown parents and cycles are
//! errors) and each role's closure (its own grants and all its ancestors').

use super::{Interner, read_scopes};
use crate::index::NameMap;
use crate::locate::NodePath;
use crate::policy::{Role, ScopeSet};
use crate::problem::Diagnostics;
use crate::reader::Node;
use std::collections::HashSet;

/// Roles as read, parents resolved to indexes.
#[derive(Debug, Default)]
pub(super) struct Roles {
    roles: Vec<Role>,
    index: NameMap<usize>,
}

pub(super) fn read(
    node: Option<&Node<'_>>,
    scopes: &mut Interner,
    diag: &mut Diagnostics,
) -> Roles {
    let Some(node) = node else {
        return Roles::default();
    };
    let entries = node.entries(diag);
    let mut index = NameMap::default();
    for (i, (name, value)) in entries.iter().enumerate() {
        if name.is_empty() || name.chars().any(char::is_whitespace) {
            diag.error(
                &value.path,
                format!("bad role name {name:?}: it must be non-empty and without whitespace"),
            );
        }
        index.insert(Box::<str>::from(*name), i);
    }
    let mut roles = Vec::with_capacity(entries.len());
    let mut parent_paths = Vec::with_capacity(entries.len());
    for (name, value) in &entries {
        let fields = value.fields(diag, &["description", "inherits", "grants"]);
        let mut role = Role {
            name: (*name).into(),
            parents: Vec::new(),
            grants: Vec::new(),
            closure: ScopeSet::default(),
        };
        let mut paths = Vec::new();
        if let Some(fields) = fields {
            if let Some(d) = fields.get("description") {
                d.str(diag);
            }
            if let Some(grants) = fields.get("grants") {
                role.grants = read_scopes(&grants, scopes, diag);
            }
            for (parent, path) in fields
                .get("inherits")
                .and_then(|n| n.one_or_many(diag))
                .unwrap_or_default()
            {
                match index.get(parent.as_str()) {
                    Some(&p) if !role.parents.contains(&p) => {
                        role.parents.push(p);
                        paths.push(path);
                    }
                    Some(_) => {}
                    None => diag.error(
                        &path,
                        format!("{name:?} inherits {parent:?}, which is not a role defined here"),
                    ),
                }
            }
        }
        roles.push(role);
        parent_paths.push(paths);
    }
    report_cycles(&roles, &parent_paths, diag);
    Roles { roles, index }
}

/// Reports each inheritance cycle once, at the `inherits` entry of its first role
/// (in file order) that closes it.
fn report_cycles(roles: &[Role], parent_paths: &[Vec<NodePath>], diag: &mut Diagnostics) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(
        at: usize,
        roles: &[Role],
        marks: &mut [Mark],
        stack: &mut Vec<usize>,
        cycles: &mut Vec<Vec<usize>>,
    ) {
        marks[at] = Mark::Active;
        stack.push(at);
        for &p in &roles[at].parents {
            match marks[p] {
                Mark::New => visit(p, roles, marks, stack, cycles),
                Mark::Active => {
                    let start = stack.iter().position(|&r| r == p).unwrap_or(0);
                    cycles.push(stack[start..].to_vec());
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks[at] = Mark::Done;
    }
    let mut marks = vec![Mark::New; roles.len()];
    let mut cycles = Vec::new();
    for i in 0..roles.len() {
        if marks[i] == Mark::New {
            visit(i, roles, &mut marks, &mut Vec::new(), &mut cycles);
        }
    }
    let mut seen = HashSet::new();
    for mut cycle in cycles {
        // Rotate so the first role in file order leads: one report per cycle.
        let lead = (0..cycle.len()).min_by_key(|&i| cycle[i]).unwrap_or(0);
        cycle.rotate_left(lead);
        if !seen.insert(cycle.clone()) {
            continue;
        }
        let first = cycle[0];
        let next = cycle.get(1).copied().unwrap_or(first);
        let at = roles[first]
            .parents
            .iter()
            .position(|&p| p == next)
            .and_then(|i| parent_paths[first].get(i));
        let names: Vec<&str> = cycle
            .iter()
            .chain(std::iter::once(&first))
            .map(|&r| &*roles[r].name)
            .collect();
        let path = at.cloned().unwrap_or_else(|| NodePath::root().key("roles"));
        diag.error(&path, format!("inheritance cycle: {}", names.join(" -> ")));
    }
}

impl Roles {
    /// Computes every role's closure; cycles were reported, and are cut here.
    pub(super) fn compile(mut self) -> (Vec<Role>, NameMap<usize>) {
        fn closure(at: usize, roles: &mut [Role], done: &mut [bool], active: &mut [bool]) {
            if done[at] || active[at] {
                return;
            }
            active[at] = true;
            let mut set = ScopeSet::default();
            for &g in &roles[at].grants {
                set.insert(g);
            }
            for p in roles[at].parents.clone() {
                closure(p, roles, done, active);
                let parent = roles[p].closure.clone();
                set.union(&parent);
            }
            roles[at].closure = set;
            active[at] = false;
            done[at] = true;
        }
        let n = self.roles.len();
        let (mut done, mut active) = (vec![false; n], vec![false; n]);
        for i in 0..n {
            closure(i, &mut self.roles, &mut done, &mut active);
        }
        (self.roles, self.index)
    }
}

impl Role {
    /// Where `scope` comes from for this role: itself, or the nearest ancestor
    /// (breadth-first, parents in file order) that grants it directly.
    pub(crate) fn source_of<'r>(&'r self, scope: usize, roles: &'r [Role]) -> Option<&'r Role> {
        let mut queue = std::collections::VecDeque::from([self]);
        let mut seen = HashSet::new();
        while let Some(role) = queue.pop_front() {
            if !seen.insert(&*role.name) {
                continue;
            }
            if role.grants.contains(&scope) {
                return Some(role);
            }
            queue.extend(role.parents.iter().filter_map(|&p| roles.get(p)));
        }
        None
    }
}
