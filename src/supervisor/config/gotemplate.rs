//! Go `text/template` over the environment, the way ContainerPilot renders its config before it
//! parses it: `{{ .VAR }}`, pipelines, `if`/`else`/`with`/`range`, variables, trim markers,
//! Go's builtins (`and`, `or`, `not`, `len`, `index`, `eq`…, `print*`) and ContainerPilot's own
//! functions `default`, `env`, `split`, `join`, `replaceAll`, `regexReplaceAll` and `loop`.
//!
//! Hand-written: no maintained crate implements Go's template language (the Rust template
//! engines are Jinja- or Handlebars-like and disagree on syntax and on printing), and the
//! subset a config file uses is small.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A template error, with Go's `LINE:COL` where it happened.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

type Result<T> = std::result::Result<T, TemplateError>;

/// Renders `text` with `env` as the data (`.VAR`); `env "VAR"` reads `whole` (the values as
/// the process has them: `.VAR` keeps only the text up to a second `=`, as ContainerPilot's
/// environment map does).
pub fn render(text: &str, env: &BTreeMap<String, String>) -> Result<String> {
    let nodes = Parser::new(text).parse_all()?;
    let dot: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.clone(), v.split('=').next().unwrap_or("").to_string()))
        .collect();
    let mut run = Exec {
        env,
        vars: vec![("$".into(), Value::Map(dot.clone()))],
        out: String::new(),
    };
    run.nodes(&nodes, &Value::Map(dot))?;
    Ok(run.out)
}

/// Whether a `{{ }}` action holds `\"`: a JSON-escaped quote the template parser refuses.
pub fn has_escaped_quotes(text: &str) -> bool {
    text.split("{{")
        .skip(1)
        .any(|after| after.split("}}").next().is_some_and(|a| a.contains("\\\"")))
}

/// The environment variables a template reads (`.VAR` and `env "VAR"`), in order, once each.
pub fn variables(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let end = rest[start..].find("}}").map_or(rest.len(), |e| start + e);
        let action = &rest[start + 2..end];
        let Ok(tokens) = Parser::new(action).tokens(action, 0) else {
            break;
        };
        for pair in tokens.windows(2).map(|w| (w[0].clone(), w[1].clone())) {
            if let (Token::Ident(f), Token::Literal(Value::Str(name))) = &pair {
                if f == "env" && !found.contains(name) {
                    found.push(name.clone());
                }
            }
        }
        for token in tokens {
            if let Token::Field(path) = token {
                let name = path.split('.').next().unwrap_or_default().to_string();
                if !found.contains(&name) {
                    found.push(name);
                }
            }
        }
        rest = &rest[end.min(rest.len())..];
        if rest.len() < 2 {
            break;
        }
        rest = &rest[2..];
    }
    found
}

#[derive(Clone, Debug, PartialEq)]
enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    List(Vec<Value>),
    Map(BTreeMap<String, String>),
    Nil,
}

impl Value {
    fn truthy(&self) -> bool {
        match self {
            Value::Str(s) => !s.is_empty(),
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Bool(b) => *b,
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::Nil => false,
        }
    }

    /// Go's `fmt` `%v`.
    fn print(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => format!("{f}"),
            Value::Bool(b) => b.to_string(),
            Value::List(l) => {
                let items: Vec<String> = l.iter().map(Value::print).collect();
                format!("[{}]", items.join(" "))
            }
            Value::Map(m) => {
                let items: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("map[{}]", items.join(" "))
            }
            Value::Nil => "<nil>".into(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Bool(_) => "bool",
            Value::List(_) => "[]string",
            Value::Map(_) => "map[string]string",
            Value::Nil => "nil",
        }
    }
}

#[derive(Debug)]
enum Node {
    Text(String),
    Action(Pipeline),
    If(Pipeline, Vec<Node>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
}

#[derive(Debug)]
struct Pipeline {
    at: (usize, usize),
    /// `$x :=` (declare) or `$i, $v :=` in a range.
    declares: Vec<String>,
    commands: Vec<Vec<Term>>,
}

#[derive(Debug, Clone)]
enum Term {
    Dot,
    Field(Vec<String>),
    Variable(String, Vec<String>),
    Function(String),
    Literal(Value),
    Group(Box<PipelineRef>),
}

#[derive(Debug, Clone)]
struct PipelineRef(Vec<Vec<Term>>);

#[derive(Debug, PartialEq, Clone)]
enum Token {
    Dot,
    Field(String),
    Variable(String),
    Ident(String),
    Literal(Value),
    Pipe,
    Open,
    Close,
    Declare,
    Assign,
    Comma,
}

const FUNCTIONS: [&str; 23] = [
    "and",
    "or",
    "not",
    "len",
    "index",
    "print",
    "printf",
    "println",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "html",
    "urlquery",
    "default",
    "env",
    "split",
    "join",
    "replaceAll",
    "regexReplaceAll",
    "loop",
];

struct Parser<'a> {
    text: &'a str,
    at: usize,
}

/// What ended a list of nodes: the end of the text, `{{ else }}` (possibly `else if`), or
/// `{{ end }}`.
enum Ended {
    Eof,
    Else(Option<Pipeline>),
    End,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Parser { text, at: 0 }
    }

    fn position(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        (line, column)
    }

    fn error<T>(&self, offset: usize, message: impl Into<String>) -> Result<T> {
        let (line, column) = self.position(offset);
        Err(TemplateError {
            line,
            column,
            message: message.into(),
        })
    }

    fn parse_all(&mut self) -> Result<Vec<Node>> {
        let (nodes, ended) = self.nodes()?;
        match ended {
            Ended::Eof => Ok(nodes),
            Ended::Else(_) => self.error(self.at, "unexpected {{else}}"),
            Ended::End => self.error(self.at, "unexpected {{end}}"),
        }
    }

    /// Nodes up to the end of the text or a closing keyword.
    fn nodes(&mut self) -> Result<(Vec<Node>, Ended)> {
        let mut nodes = Vec::new();
        loop {
            let rest = &self.text[self.at..];
            let Some(open) = rest.find("{{") else {
                nodes.push(Node::Text(rest.to_string()));
                self.at = self.text.len();
                return Ok((nodes, Ended::Eof));
            };
            let mut text = &rest[..open];
            let action_start = self.at + open;
            let mut inner = action_start + 2;
            if self.text[inner..].starts_with("- ") {
                text = text.trim_end();
                inner += 2;
            }
            nodes.push(Node::Text(text.to_string()));
            let Some(close) = self.text[inner..].find("}}") else {
                return self.error(action_start, "unclosed action");
            };
            let mut body_end = inner + close;
            let mut after = body_end + 2;
            let trim_after = self.text[..body_end].ends_with(" -");
            if trim_after {
                body_end -= 2;
            }
            let body = self.text[inner..body_end].trim();
            if trim_after {
                let skipped = self.text[after..].len() - self.text[after..].trim_start().len();
                after += skipped;
            }
            self.at = after;
            if body.starts_with("/*") {
                if !body.ends_with("*/") {
                    return self.error(action_start, "unclosed comment");
                }
                continue;
            }
            let tokens = self.tokens(body, inner)?;
            match tokens.first() {
                Some(Token::Ident(k)) if k == "end" => return Ok((nodes, Ended::End)),
                Some(Token::Ident(k)) if k == "else" => {
                    let rest = &tokens[1..];
                    let chained = match rest.first() {
                        Some(Token::Ident(k)) if k == "if" => {
                            Some(self.pipeline(&rest[1..], action_start)?)
                        }
                        None => None,
                        _ => return self.error(action_start, "unexpected token after else"),
                    };
                    return Ok((nodes, Ended::Else(chained)));
                }
                Some(Token::Ident(k)) if k == "if" || k == "with" || k == "range" => {
                    let keyword = k.clone();
                    let pipe = self.pipeline(&tokens[1..], action_start)?;
                    let node = self.control(&keyword, pipe, action_start)?;
                    nodes.push(node);
                }
                Some(Token::Ident(k))
                    if ["define", "template", "block", "break", "continue"]
                        .contains(&k.as_str()) =>
                {
                    return self.error(action_start, format!("{{{{{k}}}}} is not supported"));
                }
                _ => nodes.push(Node::Action(self.pipeline(&tokens, action_start)?)),
            }
        }
    }

    fn control(&mut self, keyword: &str, pipe: Pipeline, at: usize) -> Result<Node> {
        let (body, ended) = self.nodes()?;
        let otherwise = match ended {
            Ended::Eof => return self.error(at, format!("unexpected EOF in {keyword}")),
            Ended::End => Vec::new(),
            Ended::Else(None) => match self.nodes()? {
                (nodes, Ended::End) => nodes,
                _ => return self.error(at, format!("expected end of {keyword}")),
            },
            // `else if` nests another `if` that owns the shared `{{ end }}`.
            Ended::Else(Some(chained)) => vec![self.control("if", chained, at)?],
        };
        Ok(match keyword {
            "if" => Node::If(pipe, body, otherwise),
            "with" => Node::With(pipe, body, otherwise),
            _ => Node::Range(pipe, body, otherwise),
        })
    }

    fn tokens(&self, body: &str, base: usize) -> Result<Vec<Token>> {
        let mut tokens = Vec::new();
        let bytes = body.as_bytes();
        let offset = base + (body.as_ptr() as usize - self.text[base..].as_ptr() as usize);
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            let start = i;
            match c {
                b' ' | b'\t' | b'\n' | b'\r' => i += 1,
                b'|' => {
                    tokens.push(Token::Pipe);
                    i += 1
                }
                b'(' => {
                    tokens.push(Token::Open);
                    i += 1
                }
                b')' => {
                    tokens.push(Token::Close);
                    i += 1
                }
                b',' => {
                    tokens.push(Token::Comma);
                    i += 1
                }
                b':' if bytes.get(i + 1) == Some(&b'=') => {
                    tokens.push(Token::Declare);
                    i += 2
                }
                b'=' => {
                    tokens.push(Token::Assign);
                    i += 1
                }
                b'"' => {
                    let (value, len) = match go_string(&body[i..]) {
                        Some(v) => v,
                        None => return self.error(offset + i, "unterminated quoted string"),
                    };
                    tokens.push(Token::Literal(Value::Str(value)));
                    i += len
                }
                b'`' => {
                    let Some(end) = body[i + 1..].find('`') else {
                        return self.error(offset + i, "unterminated raw quoted string");
                    };
                    tokens.push(Token::Literal(Value::Str(body[i + 1..i + 1 + end].into())));
                    i += end + 2
                }
                b'.' | b'$' => {
                    // `.A.B` and `$x.A` chain without spaces: one token.
                    i += 1;
                    while i < bytes.len()
                        && (bytes[i].is_ascii_alphanumeric()
                            || bytes[i] == b'_'
                            || bytes[i] == b'.')
                    {
                        i += 1;
                    }
                    let name = &body[start + 1..i];
                    tokens.push(match (c, name.is_empty()) {
                        (b'.', true) => Token::Dot,
                        (b'.', false) => Token::Field(name.into()),
                        _ => Token::Variable(format!("${name}")),
                    });
                }
                b'0'..=b'9' | b'-' | b'+' => {
                    while i < bytes.len()
                        && (bytes[i].is_ascii_alphanumeric() || b"._+-".contains(&bytes[i]))
                    {
                        i += 1;
                    }
                    let text = &body[start..i];
                    let Some(value) = go_number(text) else {
                        return self.error(offset + start, format!("bad number syntax: {text:?}"));
                    };
                    tokens.push(Token::Literal(value));
                }
                c if c.is_ascii_alphabetic() || c == b'_' => {
                    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_')
                    {
                        i += 1;
                    }
                    tokens.push(match &body[start..i] {
                        "true" => Token::Literal(Value::Bool(true)),
                        "false" => Token::Literal(Value::Bool(false)),
                        "nil" => Token::Literal(Value::Nil),
                        word => Token::Ident(word.into()),
                    });
                }
                _ => {
                    return self.error(offset + i, format!("unexpected {:?} in command", c as char))
                }
            }
        }
        Ok(tokens)
    }

    fn pipeline(&self, tokens: &[Token], at: usize) -> Result<Pipeline> {
        let mut declares = Vec::new();
        let mut rest = tokens;
        // `$x :=` or `$i, $v :=` at the start.
        if let Some(end) = tokens
            .iter()
            .position(|t| *t == Token::Declare || *t == Token::Assign)
        {
            let names: Vec<&Token> = tokens[..end]
                .iter()
                .filter(|t| **t != Token::Comma)
                .collect();
            if names.iter().all(|t| matches!(t, Token::Variable(_))) && !names.is_empty() {
                declares = names
                    .iter()
                    .map(|t| match t {
                        Token::Variable(v) => v.clone(),
                        _ => unreachable!(),
                    })
                    .collect();
                rest = &tokens[end + 1..];
            }
        }
        let commands = self.commands(rest, at)?;
        if commands.is_empty() {
            return self.error(at, "missing value for command");
        }
        let (line, column) = self.position(at);
        Ok(Pipeline {
            at: (line, column),
            declares,
            commands,
        })
    }

    fn commands(&self, tokens: &[Token], at: usize) -> Result<Vec<Vec<Term>>> {
        let mut commands = vec![Vec::new()];
        let mut i = 0;
        while i < tokens.len() {
            let term = match &tokens[i] {
                Token::Pipe => {
                    if commands.last().is_some_and(Vec::is_empty) {
                        return self.error(at, "missing command before |");
                    }
                    commands.push(Vec::new());
                    i += 1;
                    continue;
                }
                Token::Dot => Term::Dot,
                Token::Field(f) => Term::Field(f.split('.').map(String::from).collect()),
                Token::Variable(v) => {
                    let mut parts = v.split('.');
                    let name = parts.next().unwrap_or("$").to_string();
                    Term::Variable(name, parts.map(String::from).collect())
                }
                Token::Ident(name) => {
                    if !FUNCTIONS.contains(&name.as_str()) {
                        return self.error(at, format!("function {name:?} not defined"));
                    }
                    Term::Function(name.clone())
                }
                Token::Literal(v) => Term::Literal(v.clone()),
                Token::Open => {
                    let mut depth = 0;
                    let mut end = i;
                    for (j, t) in tokens.iter().enumerate().skip(i) {
                        match t {
                            Token::Open => depth += 1,
                            Token::Close => {
                                depth -= 1;
                                if depth == 0 {
                                    end = j;
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                    if depth != 0 {
                        return self.error(at, "unclosed left paren");
                    }
                    let inner = self.commands(&tokens[i + 1..end], at)?;
                    i = end;
                    Term::Group(Box::new(PipelineRef(inner)))
                }
                Token::Close => return self.error(at, "unexpected right paren"),
                Token::Declare | Token::Assign | Token::Comma => {
                    return self.error(at, "unexpected token in command")
                }
            };
            commands.last_mut().expect("one command").push(term);
            i += 1;
        }
        if commands.last().is_some_and(Vec::is_empty) && commands.len() > 1 {
            return self.error(at, "missing command after |");
        }
        commands.retain(|c| !c.is_empty());
        Ok(commands)
    }
}

/// A Go interpreted string literal at the start of `text`: its value and its length.
fn go_string(text: &str) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = text.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, i + 1)),
            '\n' => return None,
            '\\' => {
                let (_, e) = chars.next()?;
                out.push(match e {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    '\\' => '\\',
                    '"' => '"',
                    '\'' => '\'',
                    '0' => '\0',
                    _ => return None,
                });
            }
            c => out.push(c),
        }
    }
    None
}

/// Go's number literals: decimal, `0x`, `0o`, leading-zero octal, floats.
fn go_number(text: &str) -> Option<Value> {
    let clean = text.replace('_', "");
    let (negative, digits) = match clean.strip_prefix('-') {
        Some(d) => (true, d.to_string()),
        None => (false, clean.trim_start_matches('+').to_string()),
    };
    let parsed = if let Some(hex) = digits.strip_prefix("0x").or(digits.strip_prefix("0X")) {
        i64::from_str_radix(hex, 16).ok()
    } else if let Some(oct) = digits.strip_prefix("0o").or(digits.strip_prefix("0O")) {
        i64::from_str_radix(oct, 8).ok()
    } else if digits.len() > 1
        && digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        i64::from_str_radix(&digits[1..], 8).ok()
    } else {
        digits.parse::<i64>().ok()
    };
    match parsed {
        Some(n) => Some(Value::Int(if negative { -n } else { n })),
        None => clean.parse::<f64>().ok().map(Value::Float),
    }
}

struct Exec<'e> {
    env: &'e BTreeMap<String, String>,
    vars: Vec<(String, Value)>,
    out: String,
}

impl Exec<'_> {
    fn nodes(&mut self, nodes: &[Node], dot: &Value) -> Result<()> {
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

fn field(value: &Value, path: &[String], at: (usize, usize)) -> Result<Value> {
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

fn exec_error<T>(at: (usize, usize), message: impl Into<String>) -> Result<T> {
    Err(TemplateError {
        line: at.0,
        column: at.1,
        message: message.into(),
    })
}

fn want_str(value: &Value, function: &str) -> std::result::Result<String, String> {
    match value {
        Value::Str(s) => Ok(s.clone()),
        other => Err(format!(
            "wrong type for value; expected string; got {} (in {function})",
            other.kind()
        )),
    }
}

fn want_int(value: &Value) -> std::result::Result<i64, String> {
    match value {
        Value::Int(i) => Ok(*i),
        Value::Str(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("loop: {s:?} is not a number")),
        other => Err(format!("expected integer; found {}", other.print())),
    }
}

fn arity(name: &str, args: &[Value], n: usize) -> std::result::Result<(), String> {
    if args.len() == n {
        Ok(())
    } else {
        Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ))
    }
}

fn call(
    name: &str,
    args: Vec<Value>,
    env: &BTreeMap<String, String>,
) -> std::result::Result<Value, String> {
    match name {
        "and" => Ok(args
            .iter()
            .find(|a| !a.truthy())
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Nil)),
        "or" => Ok(args
            .iter()
            .find(|a| a.truthy())
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Nil)),
        "not" => {
            arity(name, &args, 1)?;
            Ok(Value::Bool(!args[0].truthy()))
        }
        "len" => {
            arity(name, &args, 1)?;
            match &args[0] {
                Value::Str(s) => Ok(Value::Int(s.len() as i64)),
                Value::List(l) => Ok(Value::Int(l.len() as i64)),
                Value::Map(m) => Ok(Value::Int(m.len() as i64)),
                other => Err(format!("len of type {}", other.kind())),
            }
        }
        "index" => {
            let (first, keys) = args.split_first().ok_or("index of nothing")?;
            let mut current = first.clone();
            for key in keys {
                current = match (&current, key) {
                    (Value::List(l), Value::Int(i)) => l
                        .get(usize::try_from(*i).map_err(|_| "index out of range")?)
                        .cloned()
                        .ok_or(format!("index out of range: {i}"))?,
                    (Value::Map(m), Value::Str(k)) => {
                        Value::Str(m.get(k).cloned().unwrap_or_default())
                    }
                    _ => return Err(format!("can't index item of type {}", current.kind())),
                };
            }
            Ok(current)
        }
        "print" => Ok(Value::Str(go_print(&args))),
        "println" => {
            let items: Vec<String> = args.iter().map(Value::print).collect();
            Ok(Value::Str(items.join(" ") + "\n"))
        }
        "printf" => {
            let (format, rest) = args.split_first().ok_or("printf needs a format")?;
            Ok(Value::Str(go_printf(&want_str(format, name)?, rest)))
        }
        "eq" | "ne" | "lt" | "le" | "gt" | "ge" => compare(name, &args),
        "html" | "urlquery" => Ok(Value::Str(go_print(&args))),
        // ContainerPilot's own: default(default, value), env(name), split(sep, s),
        // join(sep, list), replaceAll(from, to, s), regexReplaceAll(re, to, s), loop(...).
        "default" => {
            arity(name, &args, 2)?;
            Ok(if args[1].truthy() {
                args[1].clone()
            } else {
                args[0].clone()
            })
        }
        "env" => {
            arity(name, &args, 1)?;
            let key = want_str(&args[0], name)?;
            Ok(Value::Str(env.get(&key).cloned().unwrap_or_default()))
        }
        "split" => {
            arity(name, &args, 2)?;
            let sep = want_str(&args[0], name)?;
            let text = want_str(&args[1], name)?;
            let parts: Vec<Value> = if text.is_empty() {
                Vec::new()
            } else if sep.is_empty() {
                text.chars().map(|c| Value::Str(c.to_string())).collect()
            } else {
                text.split(sep.as_str())
                    .map(|p| Value::Str(p.into()))
                    .collect()
            };
            Ok(Value::List(parts))
        }
        "join" => {
            arity(name, &args, 2)?;
            let sep = want_str(&args[0], name)?;
            match &args[1] {
                Value::List(items) => {
                    let parts: Vec<String> = items.iter().map(Value::print).collect();
                    Ok(Value::Str(parts.join(&sep)))
                }
                other => Err(format!(
                    "wrong type for value; expected []string; got {}",
                    other.kind()
                )),
            }
        }
        "replaceAll" => {
            arity(name, &args, 3)?;
            let from = want_str(&args[0], name)?;
            let to = want_str(&args[1], name)?;
            Ok(Value::Str(want_str(&args[2], name)?.replace(&from, &to)))
        }
        "regexReplaceAll" => {
            arity(name, &args, 3)?;
            let pattern = want_str(&args[0], name)?;
            let re = regex_lite::Regex::new(&pattern).map_err(|e| e.to_string())?;
            let to = want_str(&args[1], name)?;
            Ok(Value::Str(
                re.replace_all(&want_str(&args[2], name)?, to.as_str())
                    .into_owned(),
            ))
        }
        "loop" => {
            let (start, end) = match args.as_slice() {
                [n] => (0, want_int(n)?),
                [a, b] => (want_int(a)?, want_int(b)?),
                _ => return Err("loop takes one or two integers".into()),
            };
            let items: Vec<Value> = if start <= end {
                (start..end).map(Value::Int).collect()
            } else {
                ((end + 1)..=start).rev().map(Value::Int).collect()
            };
            Ok(Value::List(items))
        }
        _ => Err(format!("function {name:?} not defined")),
    }
}

/// Go's `fmt.Sprint`: a space between operands when neither is a string.
fn go_print(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        let is_string = matches!(arg, Value::Str(_));
        if i > 0 && !is_string && !matches!(args[i - 1], Value::Str(_)) {
            out.push(' ');
        }
        out.push_str(&arg.print());
    }
    out
}

/// `fmt.Sprintf` for the verbs a config uses: `%s %v %d %q %%`.
fn go_printf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(verb) => match args.next() {
                Some(arg) => match verb {
                    'q' => {
                        let _ = write!(out, "{:?}", arg.print());
                    }
                    _ => out.push_str(&arg.print()),
                },
                None => {
                    let _ = write!(out, "%!{verb}(MISSING)");
                }
            },
            None => out.push_str("%!(NOVERB)"),
        }
    }
    out
}

fn compare(name: &str, args: &[Value]) -> std::result::Result<Value, String> {
    let (first, rest) = args
        .split_first()
        .ok_or(format!("missing arguments for {name}"))?;
    if rest.is_empty() {
        return Err(format!("missing argument for comparison in {name}"));
    }
    let order = |a: &Value, b: &Value| -> std::result::Result<std::cmp::Ordering, String> {
        match (a, b) {
            (Value::Str(x), Value::Str(y)) => Ok(x.cmp(y)),
            (Value::Int(x), Value::Int(y)) => Ok(x.cmp(y)),
            (Value::Bool(x), Value::Bool(y)) if name == "eq" || name == "ne" => Ok(x.cmp(y)),
            _ => Err("incompatible types for comparison".into()),
        }
    };
    let result = match name {
        // eq is true when the first equals any of the others.
        "eq" => {
            let mut any = false;
            for other in rest {
                any |= order(first, other)?.is_eq();
            }
            any
        }
        _ => {
            let o = order(first, &rest[0])?;
            match name {
                "ne" => o.is_ne(),
                "lt" => o.is_lt(),
                "le" => o.is_le(),
                "gt" => o.is_gt(),
                _ => o.is_ge(),
            }
        }
    };
    Ok(Value::Bool(result))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        [("X", "p=q=r"), ("HOME", "/root"), ("LIST", "a,b")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    // Each expected output is what ContainerPilot's `-template` printed for the same input.
    #[test]
    fn renders_as_containerpilot_does() {
        let cases = [
            ("a {{ .HOME }}", "a /root"),
            ("{{ split \",\" \"a,b,c\" }}", "[a b c]"),
            ("{{ join \"-\" (split \",\" \"a,b\") }}", "a-b"),
            ("{{ split \",\" .LIST | join \"-\" }}", "a-b"),
            ("{{ replaceAll \"a\" \"b\" \"aaa\" }}", "bbb"),
            ("{{ regexReplaceAll \"a+\" \"X\" \"baaac\" }}", "bXc"),
            (
                "{{ loop 1 4 }}|{{ loop 3 }}|{{ loop \"2\" \"5\" }}",
                "[1 2 3]|[0 1 2]|[2 3 4]",
            ),
            ("{{ loop 0 }}|{{ loop 5 2 }}", "[]|[5 4 3]"),
            ("{{ env \"X\" }}|{{ .X }}", "p=q=r|p"),
            (
                "{{ .NOPE | default \"d\" }}{{ default \"e\" .HOME }}",
                "d/root",
            ),
            ("{{ range loop 3 }}[{{ . }}]{{ end }}", "[0][1][2]"),
            ("{{ if and .HOME .NOPE }}y{{ else if .X }}x{{ end }}", "x"),
            ("{{ with .NOPE }}a{{ else }}b{{ end }}", "b"),
            ("{{- \"a\" -}}  x  {{- \"b\" }}", "axb"),
            ("{{ $x := \"v\" }}{{ $x }}", "v"),
            (
                "{{ range $i, $v := split \",\" \"a,b\" }}{{ $i }}={{ $v }};{{ end }}",
                "0=a;1=b;",
            ),
            (
                "{{ print 1 \"a\" 2 }}|{{ printf \"%s-%v\" \"a\" 3 }}",
                "1a2|a-3",
            ),
            (
                "{{ default 5 .NOPE }}|{{ .HOME | printf \"%q\" }}",
                "5|\"/root\"",
            ),
            ("{{ not .NOPE }}{{ or .NOPE \"z\" }}", "truez"),
            ("{{ index (split \",\" \"a,b\") 1 }}{{/* c */}}", "b"),
            ("port: {{ .NOPE }},", "port: ,"),
        ];
        for (template, expected) in cases {
            assert_eq!(render(template, &env()).unwrap(), expected, "{template}");
        }
    }

    #[test]
    fn errors_as_containerpilot_does() {
        for (template, needle) in [
            ("{{ nope }}", "function \"nope\" not defined"),
            ("{{ .HOME ", "unclosed action"),
            ("{{ .X.Y }}", "can't evaluate field Y"),
            ("{{ nil }}", "nil is not a command"),
            ("{{ .X | default \\\"y\\\" }}", "unexpected"),
            ("{{ if .X }}a", "unexpected EOF"),
            ("{{ join (split \",\" \"a,b\") \"-\" }}", "wrong type"),
        ] {
            let error = render(template, &env()).unwrap_err();
            assert!(error.message.contains(needle), "{template}: {error:?}");
        }
    }
}
