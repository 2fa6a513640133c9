//! Rhai's compiled AST into the lowered IR, for the part of the language the IR covers.
//! Anything else (a function definition, `while`, a closure, an unknown function or variable,
//! `?.`) makes [`program`] answer `None`, and the script runs on rhai alone.

use rhai::{AST, ASTFlags, Dynamic, Expr as RExpr, FnCallExpr, Stmt as RStmt, StmtBlock};

use super::eval::{Block, Const, Expr, Link, MapLiteral, Op, Program, Stmt, Switch};

pub(super) fn program(ast: &AST) -> Option<Program> {
    if ast.iter_functions().next().is_some() {
        return None;
    }
    let mut lower = Lower { names: Vec::new(), slots: 0 };
    let body = lower.stmts(ast.statements())?;
    Some(Program { body, slots: lower.slots })
}

struct Lower {
    /// The variables in scope, innermost last: name, slot, and whether it is a constant.
    names: Vec<(String, usize, bool)>,
    slots: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dot,
    Index,
}

impl Lower {
    /// A new variable. Not one named `body`: rhai hands back the newest `body` in scope as the
    /// new body of a script ending in a statement, and a lowered run never changes the body.
    fn declare(&mut self, name: &str, constant: bool) -> Option<usize> {
        if name == "body" {
            return None;
        }
        let slot = self.slots;
        self.slots += 1;
        self.names.push((name.to_owned(), slot, constant));
        Some(slot)
    }

    fn lookup(&self, name: &str) -> Option<(usize, bool)> {
        self.names.iter().rev().find(|(n, ..)| n == name).map(|(_, slot, constant)| (*slot, *constant))
    }

    /// A local that may change: declared with `let`, not `const`.
    fn variable(&self, expr: &RExpr) -> Option<usize> {
        match expr {
            RExpr::Variable(v, ..) => match self.lookup(&v.1)? {
                (slot, false) => Some(slot),
                (_, true) => None,
            },
            _ => None,
        }
    }

    /// A `{ ... }` block: its variables end with it.
    fn block(&mut self, block: &StmtBlock) -> Option<Block> {
        let mark = self.names.len();
        let lowered = self.stmts(block.statements());
        self.names.truncate(mark);
        lowered
    }

    fn stmts(&mut self, stmts: &[RStmt]) -> Option<Block> {
        let mut out = Vec::with_capacity(stmts.len());
        for stmt in stmts {
            out.push(self.stmt(stmt)?);
        }
        Some(Block(out))
    }

    fn stmt(&mut self, stmt: &RStmt) -> Option<Stmt> {
        Some(match stmt {
            RStmt::Noop(_) => Stmt::Expr(Expr::Const(Const::Unit)),
            RStmt::Var(var, flags, _) => {
                let (ident, value, _) = &**var;
                // The value first: `let x = x + 1` reads the outer `x`.
                let value = self.expr(value)?;
                let slot = self.declare(&ident.name, flags.contains(ASTFlags::CONSTANT))?;
                Stmt::Set(slot, value)
            }
            RStmt::Assignment(assignment) => {
                let (op, target) = &**assignment;
                let slot = self.variable(&target.lhs)?;
                let value = self.expr(&target.rhs)?;
                match op.get_op_assignment_info() {
                    None => Stmt::Set(slot, value),
                    Some((.., op_syntax)) => Stmt::OpAssign(slot, arithmetic(op_syntax)?, value),
                }
            }
            RStmt::For(parts, _) => {
                let (var, counter, flow) = &**parts;
                let source = self.expr(&flow.expr)?;
                // A failed lowering is abandoned whole, so returning early needs no cleanup.
                let mark = self.names.len();
                let var = self.declare(&var.name, false)?;
                let counter = match counter {
                    Some(c) => Some(self.declare(&c.name, false)?),
                    None => None,
                };
                let body = self.stmts(flow.body.statements())?;
                self.names.truncate(mark);
                Stmt::For { var, counter, source, body }
            }
            RStmt::If(flow, _) => {
                let cond = self.expr(&flow.expr)?;
                Stmt::Expr(Expr::If(Box::new((cond, self.block(&flow.body)?, self.block(&flow.branch)?))))
            }
            RStmt::Switch(switch, _) => Stmt::Expr(self.switch(switch)?),
            RStmt::Block(block) => Stmt::Expr(Expr::Block(self.block(block)?)),
            RStmt::Expr(expr) => match self.push(expr) {
                Some(push) => push,
                None => Stmt::Expr(self.expr(expr)?),
            },
            RStmt::FnCall(call, _) => Stmt::Expr(self.call(call)?),
            RStmt::BreakLoop(None, flags, _) if flags.contains(ASTFlags::BREAK) => Stmt::Break,
            RStmt::BreakLoop(None, ..) => Stmt::Continue,
            _ => return None,
        })
    }

    /// `x.push(e)` on a local array. Any other push is left to the expression lowering, which
    /// refuses it.
    fn push(&mut self, expr: &RExpr) -> Option<Stmt> {
        let RExpr::Dot(chain, flags, _) = expr else { return None };
        let RExpr::MethodCall(call, _) = &chain.rhs else { return None };
        if !flags.is_empty() || call.name != "push" || call.args.len() != 1 {
            return None;
        }
        let slot = self.variable(&chain.lhs)?;
        Some(Stmt::Push(slot, self.expr(&call.args[0])?))
    }

    fn switch(&mut self, switch: &(RExpr, rhai::SwitchCasesCollection)) -> Option<Expr> {
        let (value, cases) = switch;
        if !cases.ranges.is_empty() {
            return None;
        }
        // A `let` as an arm (`"a" => let x = 1`) is parsed without a scope of its own and shifts
        // rhai's variable slots; braces look the same in the AST, so neither is lowered.
        let declares = |e: &RExpr| matches!(e, RExpr::Stmt(block) if block.iter().any(|s| matches!(s, RStmt::Var(..))));
        if cases.expressions.iter().any(|arm| declares(&arm.lhs) || declares(&arm.rhs)) {
            return None;
        }
        let value = self.expr(value)?;
        let mut lowered = Vec::with_capacity(cases.cases.len());
        for case in cases.cases.values() {
            let mut arms = Vec::with_capacity(case.blocks.len());
            for &index in &case.blocks {
                let arm = cases.expressions.get(index)?;
                arms.push((self.expr(&arm.lhs)?, self.expr(&arm.rhs)?));
            }
            lowered.push((constant(&case.value)?, arms));
        }
        let default = match cases.def_case {
            Some(index) => Some(self.expr(&cases.expressions.get(index)?.rhs)?),
            None => None,
        };
        Some(Expr::Switch(Box::new(Switch { value, cases: lowered, default })))
    }

    fn exprs(&mut self, exprs: &[RExpr]) -> Option<Vec<Expr>> {
        let mut out = Vec::with_capacity(exprs.len());
        for expr in exprs {
            out.push(self.expr(expr)?);
        }
        Some(out)
    }

    fn expr(&mut self, expr: &RExpr) -> Option<Expr> {
        Some(match expr {
            RExpr::DynamicConstant(value, _) => folded(value)?,
            RExpr::BoolConstant(b, _) => Expr::Const(Const::Bool(*b)),
            RExpr::IntegerConstant(i, _) => Expr::Const(Const::Int(*i)),
            RExpr::FloatConstant(f, _) => Expr::Const(Const::Float(**f)),
            RExpr::StringConstant(s, _) => Expr::Const(Const::Str(s.as_str().into())),
            RExpr::Unit(_) => Expr::Const(Const::Unit),
            RExpr::InterpolatedString(parts, _) => Expr::Interpolated(self.exprs(parts)?),
            RExpr::Array(items, _) => Expr::Array(self.exprs(items)?),
            RExpr::Map(map, _) => {
                let (members, template) = &**map;
                let mut lowered = Vec::with_capacity(members.len());
                for (key, value) in members {
                    lowered.push((Box::<str>::from(key.name.as_str()), self.expr(value)?));
                }
                if lowered.len() != template.len() {
                    return None;
                }
                map_literal(lowered)?
            }
            RExpr::Variable(v, ..) => match self.lookup(&v.1) {
                Some((slot, _)) => Expr::Local(slot),
                None if v.1 == "body" => Expr::Body,
                None => return None,
            },
            RExpr::Dot(chain, flags, _) => self.chain(Kind::Dot, chain, *flags)?,
            RExpr::Index(chain, flags, _) => self.chain(Kind::Index, chain, *flags)?,
            RExpr::And(items, _) => Expr::And(self.exprs(items)?),
            RExpr::Or(items, _) => Expr::Or(self.exprs(items)?),
            RExpr::Coalesce(items, _) => Expr::Coalesce(self.exprs(items)?),
            RExpr::Stmt(block) => Expr::Block(self.block(block)?),
            RExpr::FnCall(call, _) => self.call(call)?,
            _ => return None,
        })
    }

    fn call(&mut self, call: &FnCallExpr) -> Option<Expr> {
        if call.capture_parent_scope {
            return None;
        }
        let args = &call.args;
        if call.op_token.is_none() {
            return match (call.name.as_str(), args.len()) {
                ("unique", 1) => Some(Expr::Unique(Box::new(self.expr(&args[0])?))),
                _ => None,
            };
        }
        Some(match (call.name.as_str(), args.len()) {
            ("-", 1) => Expr::Neg(Box::new(self.expr(&args[0])?)),
            ("!", 1) => Expr::Not(Box::new(self.expr(&args[0])?)),
            (name, 2) => {
                let op = match name {
                    "==" => Op::Eq,
                    "!=" => Op::Ne,
                    "<" => Op::Lt,
                    "<=" => Op::Le,
                    ">" => Op::Gt,
                    ">=" => Op::Ge,
                    other => arithmetic(other)?,
                };
                Expr::Binary(op, Box::new((self.expr(&args[0])?, self.expr(&args[1])?)))
            }
            _ => return None,
        })
    }

    /// A `.`/`[]` chain. Rhai nests a chain to the right: each node holds one link and the
    /// rest, and its kind says how the next link applies. An index node marked `BREAK` holds
    /// the final index as a whole expression.
    fn chain(&mut self, kind: Kind, chain: &rhai::BinaryExpr, flags: ASTFlags) -> Option<Expr> {
        let base = self.expr(&chain.lhs)?;
        let mut links = Vec::new();
        self.links(kind, flags, &chain.rhs, &mut links)?;
        Some(Expr::Chain(Box::new(base), links))
    }

    fn links(&mut self, kind: Kind, flags: ASTFlags, rest: &RExpr, out: &mut Vec<Link>) -> Option<()> {
        // `?.` and `?[` (NEGATED) are rhai's.
        if flags.contains(ASTFlags::NEGATED) {
            return None;
        }
        if kind == Kind::Index && flags.contains(ASTFlags::BREAK) {
            out.push(Link::Index(self.expr(rest)?));
            return Some(());
        }
        match rest {
            RExpr::Dot(next, next_flags, _) => {
                out.push(self.link(kind, &next.lhs)?);
                self.links(Kind::Dot, *next_flags, &next.rhs, out)
            }
            RExpr::Index(next, next_flags, _) => {
                out.push(self.link(kind, &next.lhs)?);
                self.links(Kind::Index, *next_flags, &next.rhs, out)
            }
            last => {
                out.push(self.link(kind, last)?);
                Some(())
            }
        }
    }

    fn link(&mut self, kind: Kind, expr: &RExpr) -> Option<Link> {
        match (kind, expr) {
            (Kind::Index, index) => Some(Link::Index(self.expr(index)?)),
            (Kind::Dot, RExpr::Property(property, _)) => Some(Link::Prop(property.2.as_str().into())),
            (Kind::Dot, RExpr::MethodCall(call, _)) => match (call.name.as_str(), call.args.len()) {
                ("get", 1) => Some(Link::Get(self.expr(&call.args[0])?)),
                ("len", 0) => Some(Link::Len),
                _ => None,
            },
            _ => None,
        }
    }
}

fn arithmetic(op: &str) -> Option<Op> {
    Some(match op {
        "+" => Op::Add,
        "-" => Op::Sub,
        "*" => Op::Mul,
        "/" => Op::Div,
        "%" => Op::Rem,
        _ => return None,
    })
}

/// A map literal from its members in source order; `None` if a key repeats.
fn map_literal(members: Vec<(Box<str>, Expr)>) -> Option<Expr> {
    let mut sorted: Vec<usize> = (0..members.len()).collect();
    sorted.sort_by(|&a, &b| members[a].0.cmp(&members[b].0));
    if sorted.windows(2).any(|pair| members[pair[0]].0 == members[pair[1]].0) {
        return None;
    }
    Some(Expr::Map(Box::new(MapLiteral { members, sorted })))
}

/// A value rhai's optimizer computed at compile time (`[]`, `[1, 2]`, `#{a: 1}`), rebuilt
/// as the literal it came from.
fn folded(value: &Dynamic) -> Option<Expr> {
    if let Ok(items) = value.as_array_ref() {
        return items.iter().map(folded).collect::<Option<Vec<_>>>().map(Expr::Array);
    }
    if let Ok(map) = value.as_map_ref() {
        // Rhai's maps iterate in key order, the order `Expr::Map` keeps.
        let members = map.iter().map(|(k, v)| Some((Box::<str>::from(k.as_str()), folded(v)?)));
        return map_literal(members.collect::<Option<Vec<_>>>()?);
    }
    constant(value).map(Expr::Const)
}

fn constant(value: &Dynamic) -> Option<Const> {
    if value.is_unit() {
        Some(Const::Unit)
    } else if let Ok(b) = value.as_bool() {
        Some(Const::Bool(b))
    } else if let Ok(i) = value.as_int() {
        Some(Const::Int(i))
    } else if let Ok(f) = value.as_float() {
        Some(Const::Float(f))
    } else if value.is_string() {
        value.clone().into_immutable_string().ok().map(|s| Const::Str(s.as_str().into()))
    } else {
        None
    }
}
