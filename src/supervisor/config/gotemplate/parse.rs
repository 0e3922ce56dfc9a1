//! Parsing a template: text and `{{ }}` actions into nodes, actions into pipelines of
//! commands, commands into terms (fields, variables, functions, literals, groups).

use super::{Result, TemplateError, Value};

#[derive(Debug)]
pub(super) enum Node {
    Text(String),
    Action(Pipeline),
    If(Pipeline, Vec<Node>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
}

#[derive(Debug)]
pub(super) struct Pipeline {
    pub(super) at: (usize, usize),
    /// `$x :=` (declare) or `$i, $v :=` in a range.
    pub(super) declares: Vec<String>,
    pub(super) commands: Vec<Vec<Term>>,
}

#[derive(Debug, Clone)]
pub(super) enum Term {
    Dot,
    Field(Vec<String>),
    Variable(String, Vec<String>),
    Function(String),
    Literal(Value),
    Group(Box<PipelineRef>),
}

#[derive(Debug, Clone)]
pub(super) struct PipelineRef(pub(super) Vec<Vec<Term>>);

#[derive(Debug, PartialEq, Clone)]
pub(super) enum Token {
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

pub(super) const FUNCTIONS: [&str; 23] = [
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

pub(super) struct Parser<'a> {
    text: &'a str,
    at: usize,
}

/// What ended a list of nodes: the end of the text, `{{ else }}` (possibly `else if`), or
/// `{{ end }}`.
pub(super) enum Ended {
    Eof,
    Else(Option<Pipeline>),
    End,
}

impl<'a> Parser<'a> {
    pub(super) fn new(text: &'a str) -> Self {
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

    pub(super) fn parse_all(&mut self) -> Result<Vec<Node>> {
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

    pub(super) fn tokens(&self, body: &str, base: usize) -> Result<Vec<Token>> {
        let mut tokens = Vec::new();
        let offset = base + (body.as_ptr() as usize - self.text[base..].as_ptr() as usize);
        let mut i = 0;
        while i < body.len() {
            let (token, len) = self.token(body, i, offset)?;
            tokens.extend(token);
            i += len;
        }
        Ok(tokens)
    }

    /// The token at `i` of `body` (`None` for blanks) and how many bytes it takes.
    fn token(&self, body: &str, i: usize, offset: usize) -> Result<(Option<Token>, usize)> {
        let bytes = body.as_bytes();
        let c = bytes[i];
        let run = |accept: &dyn Fn(u8) -> bool| {
            bytes[i + 1..]
                .iter()
                .position(|b| !accept(*b))
                .map_or(bytes.len(), |p| i + 1 + p)
        };
        let one = |token: Token| Ok((Some(token), 1));
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => Ok((None, 1)),
            b'|' => one(Token::Pipe),
            b'(' => one(Token::Open),
            b')' => one(Token::Close),
            b',' => one(Token::Comma),
            b':' if bytes.get(i + 1) == Some(&b'=') => Ok((Some(Token::Declare), 2)),
            b'=' => one(Token::Assign),
            b'"' => match go_string(&body[i..]) {
                Some((value, len)) => Ok((Some(Token::Literal(Value::Str(value))), len)),
                None => self.error(offset + i, "unterminated quoted string"),
            },
            b'`' => match body[i + 1..].find('`') {
                Some(end) => {
                    let raw = Value::Str(body[i + 1..i + 1 + end].into());
                    Ok((Some(Token::Literal(raw)), end + 2))
                }
                None => self.error(offset + i, "unterminated raw quoted string"),
            },
            b'.' | b'$' => {
                // `.A.B` and `$x.A` chain without spaces: one token.
                let end = run(&|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
                let name = &body[i + 1..end];
                let token = match (c, name.is_empty()) {
                    (b'.', true) => Token::Dot,
                    (b'.', false) => Token::Field(name.into()),
                    _ => Token::Variable(format!("${name}")),
                };
                Ok((Some(token), end - i))
            }
            b'0'..=b'9' | b'-' | b'+' => {
                let end = run(&|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b));
                let text = &body[i..end];
                match go_number(text) {
                    Some(value) => Ok((Some(Token::Literal(value)), end - i)),
                    None => self.error(offset + i, format!("bad number syntax: {text:?}")),
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let end = run(&|b| b.is_ascii_alphanumeric() || b == b'_');
                let token = match &body[i..end] {
                    "true" => Token::Literal(Value::Bool(true)),
                    "false" => Token::Literal(Value::Bool(false)),
                    "nil" => Token::Literal(Value::Nil),
                    word => Token::Ident(word.into()),
                };
                Ok((Some(token), end - i))
            }
            _ => self.error(offset + i, format!("unexpected {:?} in command", c as char)),
        }
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
pub(super) fn go_string(text: &str) -> Option<(String, usize)> {
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
pub(super) fn go_number(text: &str) -> Option<Value> {
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
