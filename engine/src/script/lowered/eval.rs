//! Running a lowered script: its IR, its values, and the evaluator.
//!
//! Every operation here either does exactly what rhai would do for the same values, or gives
//! up ([`Stop::Bail`]) and leaves the run to rhai. Giving up is always correct; answering is
//! correct only where the rule is known, so each operation lists the types it takes and bails
//! on the rest.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::rc::Rc;

use serde_json::{Map, Number, Value};

use super::super::convert::number;
use super::super::vars::MAX_JSON_DEPTH;

/// A lowered script: statements over numbered local slots.
#[derive(Debug)]
pub(crate) struct Program {
    pub(super) body: Block,
    pub(super) slots: usize,
}

#[derive(Debug, Default)]
pub(super) struct Block(pub(super) Vec<Stmt>);

#[derive(Debug)]
pub(super) enum Stmt {
    /// `let x = e` and `x = e` alike: a slot takes a value.
    Set(usize, Expr),
    /// `x op= e`.
    OpAssign(usize, Op, Expr),
    /// `x.push(e)` on a local.
    Push(usize, Expr),
    For {
        var: usize,
        counter: Option<usize>,
        source: Expr,
        body: Block,
    },
    Break,
    Continue,
    /// An expression whose value the block yields if it is the last statement.
    Expr(Expr),
}

#[derive(Debug)]
pub(super) enum Expr {
    Const(Const),
    Body,
    Local(usize),
    /// A base and the links after it: `body.client.name`, `items[0]`, `m.get("k")`.
    Chain(Box<Expr>, Vec<Link>),
    Array(Vec<Expr>),
    Map(Box<MapLiteral>),
    Binary(Op, Box<(Expr, Expr)>),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Coalesce(Vec<Expr>),
    If(Box<(Expr, Block, Block)>),
    Switch(Box<Switch>),
    Block(Block),
    Interpolated(Vec<Expr>),
    Unique(Box<Expr>),
}

/// `#{ b: .., a: .. }`: members in source order (rhai evaluates them so), and the order they
/// take in the map (rhai's maps are sorted by key).
#[derive(Debug)]
pub(super) struct MapLiteral {
    pub(super) members: Vec<(Box<str>, Expr)>,
    pub(super) sorted: Vec<usize>,
}

#[derive(Debug)]
pub(super) enum Const {
    Unit,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Box<str>),
}

#[derive(Debug)]
pub(super) enum Link {
    Prop(Box<str>),
    Index(Expr),
    Get(Expr),
    Len,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug)]
pub(super) struct Switch {
    pub(super) value: Expr,
    /// Each case value with its guarded arms in order (guard, then result).
    pub(super) cases: Vec<(Const, Vec<(Expr, Expr)>)>,
    pub(super) default: Option<Expr>,
}

/// The limits a run stays under; crossing one gives the run to rhai, which enforces the real
/// limit with its own error.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) operations: u64,
    pub(crate) string: usize,
    pub(crate) array: usize,
    pub(crate) map: usize,
}

/// Why a run stopped early. `Break` and `Continue` never leave a loop: rhai refuses them
/// outside one when it compiles.
#[derive(Debug)]
pub(super) enum Stop {
    Bail,
    Break,
    Continue,
}

type Res<T> = Result<T, Stop>;

/// A value during a run. Strings and containers of the input are borrowed, not copied.
#[derive(Debug, Clone)]
pub(super) enum Val<'a> {
    Unit,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Text<'a>),
    /// An array or object of the input body, read as rhai would read its conversion.
    Json(&'a Value),
    Array(Vec<Val<'a>>, Sizes),
    /// Keys in rhai's order (sorted).
    Map(Vec<(&'a str, Val<'a>)>, Sizes),
}

/// A string: borrowed from the input or the script, or made by the run and shared, so that
/// copying it costs no more than rhai's shared strings do.
#[derive(Debug, Clone)]
pub(super) enum Text<'a> {
    Borrowed(&'a str),
    Shared(Rc<str>),
}

impl Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            Text::Borrowed(s) => s,
            Text::Shared(s) => s,
        }
    }
}

/// Rhai's data-size measure of a value: array elements, map properties and string bytes,
/// nested ones included (`calc_data_sizes`).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Sizes {
    arrays: usize,
    maps: usize,
    strings: usize,
    /// Levels of arrays and maps, so that no value the run makes nests deeper than JSON may
    /// (and dropping it cannot exhaust the stack).
    depth: usize,
}

impl Program {
    /// Runs a transform over `body`: its new body, or `None` when the run was given up and
    /// rhai must run it. A script ending in a statement yields the body, which a lowered
    /// script cannot change: as rhai hands it back when the script names it (`uses_body`),
    /// and untouched otherwise, as `ScriptEngine::run` does.
    pub(crate) fn run(&self, body: &Value, uses_body: bool, limits: Limits) -> Option<Value> {
        match self.evaluate(body, limits)?.0 {
            Val::Unit if uses_body => normalized(body, 0),
            Val::Unit => Some(body.clone()),
            value => to_json(value, 0).ok(),
        }
    }

    /// The operations a run of a transform counts, if it completes (for tests).
    #[cfg(test)]
    pub(super) fn operations(&self, body: &Value, limits: Limits) -> Option<u64> {
        let (value, operations) = self.evaluate(body, limits)?;
        to_json(value, 0).ok()?;
        Some(operations)
    }

    /// Evaluates an expression script for its value (`()` is `null`).
    pub(crate) fn eval(&self, body: &Value, limits: Limits) -> Option<Value> {
        to_json(self.evaluate(body, limits)?.0, 0).ok()
    }

    /// Evaluates a condition; `None` also when it is not a bool (rhai's error to give).
    pub(crate) fn eval_bool(&self, body: &Value, limits: Limits) -> Option<bool> {
        match self.evaluate(body, limits)?.0 {
            Val::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The script's value over `body` and the operations it took; `None` if it gave up.
    fn evaluate<'a>(&'a self, body: &'a Value, limits: Limits) -> Option<(Val<'a>, u64)> {
        let mut run = Run { body, locals: vec![Val::Unit; self.slots], operations: 0, limits };
        let value = run.block(&self.body).ok()?;
        Some((value, run.operations))
    }
}

struct Run<'a> {
    body: &'a Value,
    locals: Vec<Val<'a>>,
    operations: u64,
    limits: Limits,
}

impl<'a> Run<'a> {
    fn tick(&mut self, n: u64) -> Res<()> {
        self.operations += n;
        if self.operations > self.limits.operations { Err(Stop::Bail) } else { Ok(()) }
    }

    fn block(&mut self, block: &'a Block) -> Res<Val<'a>> {
        let mut last = Val::Unit;
        for stmt in &block.0 {
            last = self.stmt(stmt)?;
        }
        Ok(last)
    }

    fn stmt(&mut self, stmt: &'a Stmt) -> Res<Val<'a>> {
        self.tick(2)?;
        match stmt {
            Stmt::Set(slot, e) => {
                let v = self.expr(e)?;
                self.locals[*slot] = v;
            }
            Stmt::OpAssign(slot, op, e) => {
                let rhs = self.expr(e)?;
                let lhs = std::mem::replace(&mut self.locals[*slot], Val::Unit);
                self.locals[*slot] = self.binary(*op, lhs, rhs)?;
            }
            Stmt::Push(slot, e) => {
                let item = self.expr(e)?;
                let item_sizes = self.sizes_of(&item)?;
                let Val::Array(items, sizes) = &mut self.locals[*slot] else { return Err(Stop::Bail) };
                items.push(item);
                *sizes = sizes.plus_element(item_sizes);
                let sizes = *sizes;
                self.check(sizes)?;
            }
            Stmt::For { var, counter, source, body } => {
                match self.expr(source)? {
                    Val::Json(Value::Array(items)) => {
                        for (i, item) in items.iter().enumerate() {
                            if self.iteration(*var, *counter, i, from_json(item), body)? {
                                break;
                            }
                        }
                    }
                    Val::Array(items, _) => {
                        for (i, item) in items.into_iter().enumerate() {
                            if self.iteration(*var, *counter, i, item, body)? {
                                break;
                            }
                        }
                    }
                    _ => return Err(Stop::Bail),
                }
                return Ok(Val::Unit);
            }
            Stmt::Break => return Err(Stop::Break),
            Stmt::Continue => return Err(Stop::Continue),
            Stmt::Expr(e) => return self.expr(e),
        }
        Ok(Val::Unit)
    }

    /// One turn of a `for` loop; `true` when the loop breaks.
    fn iteration(&mut self, var: usize, counter: Option<usize>, i: usize, item: Val<'a>, body: &'a Block) -> Res<bool> {
        self.tick(2)?;
        self.locals[var] = item;
        if let Some(counter) = counter {
            self.locals[counter] = Val::Int(i64::try_from(i).map_err(|_| Stop::Bail)?);
        }
        match self.block(body) {
            Ok(_) | Err(Stop::Continue) => Ok(false),
            Err(Stop::Break) => Ok(true),
            Err(Stop::Bail) => Err(Stop::Bail),
        }
    }

    fn expr(&mut self, expr: &'a Expr) -> Res<Val<'a>> {
        self.tick(2)?;
        Ok(match expr {
            Expr::Const(c) => constant(c),
            Expr::Body => from_json(self.body),
            Expr::Local(slot) => {
                // Copying an array or a map costs its size, as it does in rhai.
                if let Val::Array(_, sizes) | Val::Map(_, sizes) = &self.locals[*slot] {
                    self.tick((sizes.arrays + sizes.maps) as u64)?;
                }
                self.locals[*slot].clone()
            }
            Expr::Chain(base, links) => self.chain(base, links)?,
            Expr::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                let mut sizes = Sizes::CONTAINER;
                for item in items {
                    let v = self.expr(item)?;
                    sizes = sizes.plus_element(self.sizes_of(&v)?);
                    out.push(v);
                }
                self.check(sizes)?;
                Val::Array(out, sizes)
            }
            Expr::Map(map) => {
                let mut values = Vec::with_capacity(map.members.len());
                let mut sizes = Sizes::CONTAINER;
                for (_, value) in &map.members {
                    let v = self.expr(value)?;
                    sizes = sizes.plus_property(self.sizes_of(&v)?);
                    values.push(Some(v));
                }
                self.check(sizes)?;
                let out = map.sorted.iter().map(|&i| (&*map.members[i].0, values[i].take().unwrap_or(Val::Unit)));
                Val::Map(out.collect(), sizes)
            }
            Expr::Binary(op, operands) => {
                let lhs = self.expr(&operands.0)?;
                let rhs = self.expr(&operands.1)?;
                self.binary(*op, lhs, rhs)?
            }
            Expr::Neg(e) => match self.expr(e)? {
                Val::Int(i) => Val::Int(i.checked_neg().ok_or(Stop::Bail)?),
                Val::Float(f) => Val::Float(-f),
                _ => return Err(Stop::Bail),
            },
            Expr::Not(e) => Val::Bool(!self.bool(e)?),
            Expr::And(items) => {
                for item in items {
                    if !self.bool(item)? {
                        return Ok(Val::Bool(false));
                    }
                }
                Val::Bool(true)
            }
            Expr::Or(items) => {
                for item in items {
                    if self.bool(item)? {
                        return Ok(Val::Bool(true));
                    }
                }
                Val::Bool(false)
            }
            Expr::Coalesce(items) => {
                let mut value = Val::Unit;
                for item in items {
                    value = self.expr(item)?;
                    if !matches!(value, Val::Unit) {
                        break;
                    }
                }
                value
            }
            Expr::If(parts) => {
                let (cond, then, otherwise) = &**parts;
                if self.bool(cond)? { self.block(then)? } else { self.block(otherwise)? }
            }
            Expr::Switch(switch) => self.switch(switch)?,
            Expr::Block(block) => self.block(block)?,
            Expr::Interpolated(parts) => {
                let mut out = String::new();
                for part in parts {
                    match self.expr(part)? {
                        Val::Str(s) => out.push_str(&s),
                        Val::Int(i) => out.push_str(&i.to_string()),
                        _ => return Err(Stop::Bail),
                    }
                }
                self.check_string(&out)?;
                Val::Str(Text::Shared(out.into()))
            }
            Expr::Unique(e) => self.unique(e)?,
        })
    }

    fn bool(&mut self, expr: &'a Expr) -> Res<bool> {
        match self.expr(expr)? {
            Val::Bool(b) => Ok(b),
            _ => Err(Stop::Bail),
        }
    }

    /// A chain, evaluated in rhai's order: every index and argument first, then the base, then
    /// the links from left to right. A local base is read in place rather than copied.
    fn chain(&mut self, base: &'a Expr, links: &'a [Link]) -> Res<Val<'a>> {
        let mut keys = Vec::new();
        for link in links {
            if let Link::Index(e) | Link::Get(e) = link {
                keys.push(self.expr(e)?);
            }
        }
        let mut keys = keys.into_iter();
        let mut links = links.iter();
        let mut value = match base {
            Expr::Local(slot) => {
                let Some(first) = links.next() else { return Ok(self.locals[*slot].clone()) };
                let key = takes_key(first).then(|| keys.next()).flatten();
                if is_method(first) {
                    let measured = measure(&self.locals[*slot]);
                    self.charge(measured)?;
                }
                apply(&self.locals[*slot], first, key)?
            }
            base => self.expr(base)?,
        };
        for link in links {
            self.tick(2)?;
            let key = takes_key(link).then(|| keys.next()).flatten();
            if is_method(link) {
                self.charge(measure(&value))?;
            }
            value = apply(&value, link, key)?;
        }
        Ok(value)
    }

    /// A method's receiver (`.len()`, `.get(k)`): rhai checks its data size even when it only
    /// reads it, so a lowered run does too, paying for the walk.
    fn charge(&mut self, (sizes, walked): (Sizes, u64)) -> Res<()> {
        self.tick(walked)?;
        self.check(sizes)
    }

    fn switch(&mut self, switch: &'a Switch) -> Res<Val<'a>> {
        let value = self.expr(&switch.value)?;
        for (case, arms) in &switch.cases {
            self.tick(1)?;
            if same_case(&value, case)? {
                for (guard, result) in arms {
                    if self.bool(guard)? {
                        return self.expr(result);
                    }
                }
                break;
            }
        }
        match &switch.default {
            Some(e) => self.expr(e),
            None => Ok(Val::Unit),
        }
    }

    /// `unique(array)`: the library's function (script/library.rs), for the element types
    /// whose equality it defines directly.
    fn unique(&mut self, e: &'a Expr) -> Res<Val<'a>> {
        let items: Vec<Val<'a>> = match self.expr(e)? {
            Val::Array(items, _) => items,
            Val::Json(Value::Array(items)) => items.iter().map(from_json).collect(),
            _ => return Err(Stop::Bail),
        };
        self.tick(items.len() as u64)?;
        let mut out: Vec<Val<'a>> = Vec::with_capacity(items.len());
        let mut sizes = Sizes::CONTAINER;
        for item in items {
            let mut seen = false;
            self.tick(out.len() as u64)?;
            for kept in &out {
                if same_scalar(kept, &item)? {
                    seen = true;
                    break;
                }
            }
            if !seen {
                sizes = sizes.plus_element(self.sizes_of(&item)?);
                out.push(item);
            }
        }
        self.check(sizes)?;
        Ok(Val::Array(out, sizes))
    }

    fn binary(&mut self, op: Op, lhs: Val<'a>, rhs: Val<'a>) -> Res<Val<'a>> {
        use Val::{Bool, Float, Int, Str, Unit};
        let number = |f: f64| if f.is_finite() { Ok(Float(f)) } else { Err(Stop::Bail) };
        #[allow(clippy::cast_precision_loss)] // rhai's own INT-to-FLOAT conversion
        let v = match (op, lhs, rhs) {
            (Op::Add, Int(a), Int(b)) => Int(a.checked_add(b).ok_or(Stop::Bail)?),
            (Op::Sub, Int(a), Int(b)) => Int(a.checked_sub(b).ok_or(Stop::Bail)?),
            (Op::Mul, Int(a), Int(b)) => Int(a.checked_mul(b).ok_or(Stop::Bail)?),
            (Op::Div, Int(a), Int(b)) => Int(a.checked_div(b).ok_or(Stop::Bail)?),
            (Op::Rem, Int(a), Int(b)) => Int(a.checked_rem(b).ok_or(Stop::Bail)?),
            (op @ (Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Rem), a, b) => {
                let (Some(a), Some(b)) = (as_float(&a), as_float(&b)) else {
                    return self.concat(op, a, b);
                };
                number(match op {
                    Op::Add => a + b,
                    Op::Sub => a - b,
                    Op::Mul => a * b,
                    Op::Div => a / b,
                    _ => a % b,
                })?
            }
            (op, Int(a), Int(b)) => Bool(compare(op, a.cmp(&b))),
            (op, Str(a), Str(b)) => Bool(compare(op, (*a).cmp(&*b))),
            (Op::Eq, Bool(a), Bool(b)) => Bool(a == b),
            (Op::Ne, Bool(a), Bool(b)) => Bool(a != b),
            (Op::Eq, Unit, Unit) => Bool(true),
            (Op::Ne, Unit, Unit) => Bool(false),
            // Rhai compares floats with a tolerance (`func/builtin.rs`); mixed types are
            // false or a function call there. Both are rhai's to answer.
            _ => return Err(Stop::Bail),
        };
        Ok(v)
    }

    /// `+` on two strings; any other operand types are rhai's to handle.
    fn concat(&mut self, op: Op, a: Val<'a>, b: Val<'a>) -> Res<Val<'a>> {
        match (op, a, b) {
            (Op::Add, Val::Str(a), Val::Str(b)) => {
                // Rhai appends in place where it can; a copy here costs its length.
                self.tick(((a.len() + b.len()) / 64) as u64)?;
                let mut s = String::with_capacity(a.len() + b.len());
                s.push_str(&a);
                s.push_str(&b);
                self.check_string(&s)?;
                Ok(Val::Str(Text::Shared(s.into())))
            }
            _ => Err(Stop::Bail),
        }
    }

    fn sizes_of(&mut self, v: &Val<'a>) -> Res<Sizes> {
        let (sizes, walked) = measure(v);
        self.tick(walked)?;
        Ok(sizes)
    }

    fn check(&self, sizes: Sizes) -> Res<()> {
        let l = self.limits;
        let over = sizes.strings > l.string || sizes.arrays > l.array || sizes.maps > l.map;
        if over || sizes.depth > MAX_JSON_DEPTH { Err(Stop::Bail) } else { Ok(()) }
    }

    fn check_string(&self, s: &str) -> Res<()> {
        if s.len() > self.limits.string { Err(Stop::Bail) } else { Ok(()) }
    }
}

/// One link applied to a value: `.prop`, `[index]`, `.get(key)`, `.len()`.
fn apply<'a>(value: &Val<'a>, link: &'a Link, key: Option<Val<'a>>) -> Res<Val<'a>> {
    match (link, value, key) {
        // A missing property is `()` (rhai's default; the engine does not fail on it).
        (Link::Prop(name), Val::Json(Value::Object(map)), None) => Ok(map.get(&**name).map_or(Val::Unit, from_json)),
        (Link::Prop(name), Val::Map(members, _), None) => Ok(map_get(members, name)),
        (Link::Get(_), Val::Json(Value::Object(map)), Some(Val::Str(k))) => {
            Ok(map.get(&*k).map_or(Val::Unit, from_json))
        }
        (Link::Get(_), Val::Map(members, _), Some(Val::Str(k))) => Ok(map_get(members, &k)),
        (Link::Index(_), Val::Json(Value::Object(map)), Some(Val::Str(k))) => {
            Ok(map.get(&*k).map_or(Val::Unit, from_json))
        }
        (Link::Index(_), Val::Map(members, _), Some(Val::Str(k))) => Ok(map_get(members, &k)),
        (Link::Index(_), Val::Json(Value::Array(items)), Some(Val::Int(i))) => {
            let i = usize::try_from(i).map_err(|_| Stop::Bail)?;
            items.get(i).map(from_json).ok_or(Stop::Bail)
        }
        (Link::Index(_), Val::Array(items, _), Some(Val::Int(i))) => {
            let i = usize::try_from(i).map_err(|_| Stop::Bail)?;
            items.get(i).cloned().ok_or(Stop::Bail)
        }
        (Link::Len, Val::Json(Value::Array(items)), None) => len(items.len()),
        (Link::Len, Val::Json(Value::Object(map)), None) => len(map.len()),
        (Link::Len, Val::Array(items, _), None) => len(items.len()),
        (Link::Len, Val::Map(members, _), None) => len(members.len()),
        (Link::Len, Val::Str(s), None) => len(s.chars().count()),
        _ => Err(Stop::Bail),
    }
}

fn takes_key(link: &Link) -> bool {
    matches!(link, Link::Index(_) | Link::Get(_))
}

fn is_method(link: &Link) -> bool {
    matches!(link, Link::Get(_) | Link::Len)
}

/// A value's data sizes, and how many elements were walked to find them.
fn measure(v: &Val<'_>) -> (Sizes, u64) {
    match v {
        Val::Str(s) => (Sizes { strings: s.len(), ..Sizes::default() }, 0),
        Val::Array(_, sizes) | Val::Map(_, sizes) => (*sizes, 0),
        Val::Json(json) => {
            let sizes = json_sizes(json);
            (sizes, (sizes.arrays + sizes.maps) as u64)
        }
        _ => (Sizes::default(), 0),
    }
}

fn len<'a>(n: usize) -> Res<Val<'a>> {
    i64::try_from(n).map(Val::Int).map_err(|_| Stop::Bail)
}

fn map_get<'a>(members: &[(&'a str, Val<'a>)], key: &str) -> Val<'a> {
    members.binary_search_by(|(k, _)| (*k).cmp(key)).map_or(Val::Unit, |i| members[i].1.clone())
}

fn constant<'a>(c: &'a Const) -> Val<'a> {
    match c {
        Const::Unit => Val::Unit,
        Const::Bool(b) => Val::Bool(*b),
        Const::Int(i) => Val::Int(*i),
        Const::Float(f) => Val::Float(*f),
        Const::Str(s) => Val::Str(Text::Borrowed(s)),
    }
}

/// A JSON value as rhai holds it after `convert::to_rhai`: integers that fit are INT, other
/// numbers FLOAT, null is `()`.
fn from_json(v: &Value) -> Val<'_> {
    match v {
        Value::Null => Val::Unit,
        Value::Bool(b) => Val::Bool(*b),
        Value::Number(n) => match number(n) {
            Ok(i) => Val::Int(i),
            Err(f) => Val::Float(f),
        },
        Value::String(s) => Val::Str(Text::Borrowed(s)),
        Value::Array(_) | Value::Object(_) => Val::Json(v),
    }
}

#[allow(clippy::cast_precision_loss)] // rhai's own INT-to-FLOAT conversion
fn as_float(v: &Val<'_>) -> Option<f64> {
    match v {
        Val::Int(i) => Some(*i as f64),
        Val::Float(f) => Some(*f),
        _ => None,
    }
}

fn compare(op: Op, order: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    match op {
        Op::Eq => order == Equal,
        Op::Ne => order != Equal,
        Op::Lt => order == Less,
        Op::Le => order != Greater,
        Op::Gt => order == Greater,
        _ => order != Less,
    }
}

/// Whether a switch value selects a case: rhai matches on the hash of the value, type and all,
/// so `1` never selects `"1"` nor `1.0`. Values rhai would hash some other way are its own.
fn same_case(value: &Val<'_>, case: &Const) -> Res<bool> {
    match (value, case) {
        (Val::Str(a), Const::Str(b)) => Ok(**a == **b),
        (Val::Int(a), Const::Int(b)) => Ok(a == b),
        (Val::Bool(a), Const::Bool(b)) => Ok(a == b),
        (Val::Unit, Const::Unit) => Ok(true),
        (Val::Str(_) | Val::Int(_) | Val::Bool(_) | Val::Unit, _) => Ok(false),
        _ => Err(Stop::Bail),
    }
}

/// `unique`'s equality (script/library.rs `same`) for scalars; containers are compared by
/// their printed form there, which is rhai's to produce.
fn same_scalar(a: &Val<'_>, b: &Val<'_>) -> Res<bool> {
    match (a, b) {
        (Val::Str(x), Val::Str(y)) => Ok(**x == **y),
        (Val::Int(x), Val::Int(y)) => Ok(x == y),
        #[allow(clippy::float_cmp)]
        (Val::Float(x), Val::Float(y)) => Ok(x == y),
        (Val::Bool(x), Val::Bool(y)) => Ok(x == y),
        (Val::Unit, Val::Unit) => Ok(true),
        (Val::Json(_) | Val::Array(..) | Val::Map(..), _) | (_, Val::Json(_) | Val::Array(..) | Val::Map(..)) => {
            Err(Stop::Bail)
        }
        _ => Ok(false),
    }
}

impl Sizes {
    /// An empty array or map.
    const CONTAINER: Sizes = Sizes { arrays: 0, maps: 0, strings: 0, depth: 1 };

    /// The sizes of an array (a map) with one more element (property) that measures `inner`.
    fn plus_element(self, inner: Sizes) -> Sizes {
        let sum = self.plus(inner);
        Sizes { arrays: sum.arrays + 1, ..sum }
    }

    fn plus_property(self, inner: Sizes) -> Sizes {
        let sum = self.plus(inner);
        Sizes { maps: sum.maps + 1, ..sum }
    }

    fn plus(self, inner: Sizes) -> Sizes {
        Sizes {
            arrays: self.arrays + inner.arrays,
            maps: self.maps + inner.maps,
            strings: self.strings + inner.strings,
            depth: self.depth.max(inner.depth + 1),
        }
    }
}

fn json_sizes(v: &Value) -> Sizes {
    match v {
        Value::String(s) => Sizes { strings: s.len(), ..Sizes::default() },
        Value::Array(items) => items.iter().fold(Sizes::CONTAINER, |acc, item| acc.plus_element(json_sizes(item))),
        Value::Object(map) => map.values().fold(Sizes::CONTAINER, |acc, item| acc.plus_property(json_sizes(item))),
        _ => Sizes::default(),
    }
}

/// A run's value as JSON, as `convert::to_json` turns rhai's value into JSON (which refuses
/// values nested deeper than `MAX_JSON_DEPTH`).
fn to_json(v: Val<'_>, depth: usize) -> Res<Value> {
    if depth > MAX_JSON_DEPTH {
        return Err(Stop::Bail);
    }
    Ok(match v {
        Val::Unit => Value::Null,
        Val::Bool(b) => Value::Bool(b),
        Val::Int(i) => Value::from(i),
        Val::Float(f) => Value::Number(Number::from_f64(f).ok_or(Stop::Bail)?),
        Val::Str(s) => Value::String(s.to_string()),
        Val::Json(json) => normalized(json, depth).ok_or(Stop::Bail)?,
        Val::Array(items, _) => Value::Array(items.into_iter().map(|v| to_json(v, depth + 1)).collect::<Res<_>>()?),
        Val::Map(members, _) => {
            let mut out = Map::with_capacity(members.len());
            for (k, v) in members {
                out.insert(k.to_owned(), to_json(v, depth + 1)?);
            }
            Value::Object(out)
        }
    })
}

/// `v` after a trip through rhai and back: object keys sorted (rhai's maps are ordered maps)
/// and numbers as rhai holds them (an integer beyond INT becomes a float). `None` where that
/// trip fails: nested deeper than `MAX_JSON_DEPTH` from the top of the result.
fn normalized(v: &Value, depth: usize) -> Option<Value> {
    if depth > MAX_JSON_DEPTH {
        return None;
    }
    Some(match v {
        Value::Number(n) => match number(n) {
            Ok(i) => Value::from(i),
            Err(f) => Value::Number(Number::from_f64(f)?),
        },
        Value::Array(items) => Value::Array(items.iter().map(|v| normalized(v, depth + 1)).collect::<Option<_>>()?),
        Value::Object(map) => {
            let sorted: BTreeMap<&str, &Value> = map.iter().map(|(k, v)| (k.as_str(), v)).collect();
            let mut out = Map::with_capacity(sorted.len());
            for (k, v) in sorted {
                out.insert(k.to_owned(), normalized(v, depth + 1)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}
