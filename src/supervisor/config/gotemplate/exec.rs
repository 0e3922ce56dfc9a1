//! Executing parsed nodes over the data: output text, the control structures' scopes and
//! variables, and pipelines whose results feed the next command's last argument.

use std::collections::BTreeMap;

use super::functions::call;
use super::parse::{Node, Pipeline, Term};
use super::{Result, TemplateError, Value};

pub(super) struct Exec<'e> {
    pub(super) env: &'e BTreeMap<String, String>,
    pub(super) vars: Vec<(String, Value)>,
    pub(super) out: String,
}

impl Exec<'_> {
    pub(super) fn nodes(&mut self, nodes: &[Node], dot: &Value) -> Result<()> {
        for node in nodes {
            match node {
                Node::Text(text) => self.out.push_str(text),
                Node::Action(pipe) => {
                    let value = self.pipeline(pipe, dot)?;
                    if pipe.declares.is_empty() {
                        self.out.push_str(&value.print());
                    }
                }
                Node::If(pipe, then, otherwise) => {
                    let mark = self.vars.len();
                    let branch = if self.pipeline(pipe, dot)?.truthy() {
                        then
                    } else {
                        otherwise
                    };
                    self.nodes(branch, dot)?;
                    self.vars.truncate(mark);
                }
                Node::With(pipe, then, otherwise) => {
                    let mark = self.vars.len();
                    let value = self.pipeline(pipe, dot)?;
                    if value.truthy() {
                        self.nodes(then, &value)?;
                    } else {
                        self.nodes(otherwise, dot)?;
                    }
                    self.vars.truncate(mark);
                }
                Node::Range(pipe, body, otherwise) => {
                    let mark = self.vars.len();
                    let value = self.evaluate(&pipe.commands, dot, pipe.at)?;
                    let items: Vec<(Value, Value)> = match value {
                        Value::List(items) => items
                            .into_iter()
                            .enumerate()
                            .map(|(i, v)| (Value::Int(i as i64), v))
                            .collect(),
                        Value::Map(map) => map
                            .into_iter()
                            .map(|(k, v)| (Value::Str(k), Value::Str(v)))
                            .collect(),
                        Value::Int(n) => (0..n.max(0))
                            .map(|i| (Value::Int(i), Value::Int(i)))
                            .collect(),
                        Value::Nil => Vec::new(),
                        other => {
                            return exec_error(
                                pipe.at,
                                format!("range can't iterate over {}", other.print()),
                            )
                        }
                    };
                    if items.is_empty() {
                        self.nodes(otherwise, dot)?;
                    }
                    for (key, item) in items {
                        match pipe.declares.as_slice() {
                            [v] => self.vars.push((v.clone(), item.clone())),
                            [k, v] => {
                                self.vars.push((k.clone(), key));
                                self.vars.push((v.clone(), item.clone()));
                            }
                            _ => {}
                        }
                        self.nodes(body, &item)?;
                        self.vars.truncate(mark);
                    }
                }
            }
        }
        Ok(())
    }

    fn pipeline(&mut self, pipe: &Pipeline, dot: &Value) -> Result<Value> {
        let value = self.evaluate(&pipe.commands, dot, pipe.at)?;
        if let Some(name) = pipe.declares.first() {
            self.vars.push((name.clone(), value.clone()));
        }
        Ok(value)
    }

    fn evaluate(&self, commands: &[Vec<Term>], dot: &Value, at: (usize, usize)) -> Result<Value> {
        let mut piped: Option<Value> = None;
        for command in commands {
            piped = Some(self.command(command, dot, piped, at)?);
        }
        Ok(piped.unwrap_or(Value::Nil))
    }

    fn command(
        &self,
        command: &[Term],
        dot: &Value,
        piped: Option<Value>,
        at: (usize, usize),
    ) -> Result<Value> {
        let (head, args) = command.split_first().expect("commands are not empty");
        if let Term::Function(name) = head {
            let mut values = args
                .iter()
                .map(|a| self.term(a, dot, at))
                .collect::<Result<Vec<_>>>()?;
            values.extend(piped);
            return call(name, values, self.env).or_else(|m| exec_error(at, m));
        }
        if !args.is_empty() || piped.is_some() {
            return exec_error(at, "can't give argument to non-function");
        }
        let value = self.term(head, dot, at)?;
        if value == Value::Nil && matches!(head, Term::Literal(_)) {
            return exec_error(at, "nil is not a command");
        }
        Ok(value)
    }

    fn term(&self, term: &Term, dot: &Value, at: (usize, usize)) -> Result<Value> {
        match term {
            Term::Dot => Ok(dot.clone()),
            Term::Literal(v) => Ok(v.clone()),
            Term::Field(path) => field(dot, path, at),
            Term::Variable(name, path) => {
                let Some((_, value)) = self.vars.iter().rev().find(|(n, _)| n == name) else {
                    return exec_error(at, format!("undefined variable: {name}"));
                };
                field(value, path, at)
            }
            Term::Group(inner) => self.evaluate(&inner.0, dot, at),
            Term::Function(name) => call(name, Vec::new(), self.env).or_else(|m| exec_error(at, m)),
        }
    }
}

pub(super) fn field(value: &Value, path: &[String], at: (usize, usize)) -> Result<Value> {
    let mut current = value.clone();
    for name in path {
        current = match current {
            // A map of strings gives "" for a key it lacks, as Go's zero value.
            Value::Map(map) => Value::Str(map.get(name).cloned().unwrap_or_default()),
            other => {
                return exec_error(
                    at,
                    format!("can't evaluate field {name} in type {}", other.kind()),
                )
            }
        };
    }
    Ok(current)
}

pub(super) fn exec_error<T>(at: (usize, usize), message: impl Into<String>) -> Result<T> {
    Err(TemplateError {
        line: at.0,
        column: at.1,
        message: message.into(),
    })
}
