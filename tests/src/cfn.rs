//! Reading the CloudFormation templates in `deploy/` the way CloudFormation would, for the deploy tests.
//!
//! - [`Template`]: a template parsed with `yaml_serde`, which keeps the short-form tags (`!Ref`, `!If`, `!Sub`, ...)
//!   as tagged values instead of dropping them, so `!If [RequireJwt, JWT, NONE]` and its long form
//!   `{"Fn::If": [...]}` read the same;
//! - [`Evaluator`]: the template under given parameter values: it resolves the condition functions, `Ref` and
//!   `Fn::Join`, and evaluates conditions and rules, so a test asks "what does this route get when deployed with the
//!   defaults?" instead of matching the template's spelling.
//!
//! Only what the templates use is evaluated. Anything else (an unknown intrinsic, a `Ref` to nothing) is an error,
//! so a template change this module does not understand fails the test instead of passing it unexamined.

use std::collections::HashMap;
use std::path::Path;

use yaml_serde::{Mapping, Value};

/// A parsed CloudFormation template.
#[derive(Debug, Clone)]
pub struct Template {
    root: Value,
}

/// A value after evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// A string (numbers and booleans in the template are read as their text, as CloudFormation does).
    Str(String),
    /// A list (a sequence, or a `CommaDelimitedList` parameter).
    List(Vec<Resolved>),
    /// `Ref` to a resource of the template: its logical ID.
    Resource(String),
    /// `Ref AWS::NoValue`: the property is removed.
    NoValue,
    /// A mapping that is not an intrinsic function, or `Fn::Sub`/`Fn::GetAtt` (kept unevaluated).
    Unevaluated(Value),
}

impl Resolved {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Resolved::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl Template {
    /// Parses the template at `path`, relative to the workspace root.
    pub fn load(path: &str) -> Result<Template, String> {
        let full = crate::workspace_root().join(path);
        let text =
            std::fs::read_to_string(&full).map_err(|e| format!("{}: {e}", full.display()))?;
        Template::parse(&text).map_err(|e| format!("{}: {e}", full.display()))
    }

    /// Parses template text.
    pub fn parse(text: &str) -> Result<Template, String> {
        let root: Value = yaml_serde::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
        if !root.is_mapping() {
            return Err("a template is a mapping at the top".into());
        }
        Ok(Template { root })
    }

    /// A top-level section (`Parameters`, `Conditions`, `Resources`, `Rules`, ...), empty if absent.
    pub fn section(&self, name: &str) -> Mapping {
        self.root
            .get(name)
            .and_then(Value::as_mapping)
            .cloned()
            .unwrap_or_default()
    }

    /// Every resource as (logical ID, type, whole resource).
    pub fn resources(&self) -> Vec<(String, String, Value)> {
        self.section("Resources")
            .iter()
            .map(|(id, body)| {
                let id = id.as_str().unwrap_or_default().to_string();
                let ty = body
                    .get("Type")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                (id, ty, body.clone())
            })
            .collect()
    }

    /// The resources of one type, as (logical ID, whole resource).
    pub fn resources_of_type(&self, ty: &str) -> Vec<(String, Value)> {
        self.resources()
            .into_iter()
            .filter(|(_, t, _)| t == ty)
            .map(|(id, _, body)| (id, body))
            .collect()
    }

    /// One resource by logical ID.
    pub fn resource(&self, id: &str) -> Option<Value> {
        self.section("Resources").get(id).cloned()
    }

    /// A parameter's `Default` as text, if it has one.
    pub fn parameter_default(&self, name: &str) -> Option<String> {
        self.section("Parameters")
            .get(name)
            .and_then(|p| p.get("Default"))
            .and_then(scalar_text)
    }

    /// The template under its parameters' defaults, with `overrides` on top (as `--parameter-overrides`).
    pub fn evaluator(&self, overrides: &[(&str, &str)]) -> Result<Evaluator<'_>, String> {
        let mut params = HashMap::new();
        for (name, decl) in self.section("Parameters") {
            let name = name
                .as_str()
                .ok_or("a parameter name is not a string")?
                .to_string();
            let given = overrides
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
                .or_else(|| decl.get("Default").and_then(scalar_text));
            let Some(text) = given else { continue };
            let ty = decl.get("Type").and_then(Value::as_str).unwrap_or("String");
            let value = if ty == "CommaDelimitedList" || ty.starts_with("List<") {
                Resolved::List(
                    text.split(',')
                        .map(|s| Resolved::Str(s.trim().to_string()))
                        .collect(),
                )
            } else {
                Resolved::Str(text)
            };
            params.insert(name, value);
        }
        for (name, _) in overrides {
            if !self.section("Parameters").contains_key(*name) {
                return Err(format!(
                    "override of {name}, which the template does not declare"
                ));
            }
        }
        Ok(Evaluator {
            template: self,
            params,
        })
    }
}

/// A template under fixed parameter values.
#[derive(Debug)]
pub struct Evaluator<'t> {
    template: &'t Template,
    params: HashMap<String, Resolved>,
}

impl Evaluator<'_> {
    /// Evaluates a named condition of the `Conditions` section.
    pub fn condition(&self, name: &str) -> Result<bool, String> {
        let body = self
            .template
            .section("Conditions")
            .get(name)
            .cloned()
            .ok_or_else(|| format!("no condition {name}"))?;
        self.boolean(&body)
            .map_err(|e| format!("condition {name}: {e}"))
    }

    /// Whether a resource is created: it has no `Condition`, or its condition holds.
    pub fn is_created(&self, resource: &Value) -> Result<bool, String> {
        match resource.get("Condition") {
            None => Ok(true),
            Some(c) => self.condition(c.as_str().ok_or("a resource's Condition is not a name")?),
        }
    }

    /// The assertions of the `Rules` section that fail under these parameters, as their `AssertDescription`s.
    pub fn failing_rule_assertions(&self) -> Result<Vec<String>, String> {
        let mut failing = Vec::new();
        for (name, rule) in self.template.section("Rules") {
            let name = name.as_str().unwrap_or_default();
            let applies = match rule.get("RuleCondition") {
                None => true,
                Some(c) => self.boolean(c).map_err(|e| format!("rule {name}: {e}"))?,
            };
            if !applies {
                continue;
            }
            let assertions = rule
                .get("Assertions")
                .and_then(Value::as_sequence)
                .ok_or_else(|| format!("rule {name} has no Assertions list"))?;
            for a in assertions {
                let test = a
                    .get("Assert")
                    .ok_or_else(|| format!("an assertion of rule {name} has no Assert"))?;
                if !self
                    .boolean(test)
                    .map_err(|e| format!("rule {name}: {e}"))?
                {
                    let text = a
                        .get("AssertDescription")
                        .and_then(Value::as_str)
                        .unwrap_or("(no AssertDescription)");
                    failing.push(format!("{name}: {text}"));
                }
            }
        }
        Ok(failing)
    }

    /// Evaluates a property value.
    pub fn eval(&self, v: &Value) -> Result<Resolved, String> {
        if let Some((func, arg)) = intrinsic(v) {
            return self.call(&func, arg);
        }
        Ok(match v {
            Value::Sequence(items) => {
                let mut out = Vec::new();
                for item in items {
                    match self.eval(item)? {
                        // `!Ref AWS::NoValue` in a list removes the item.
                        Resolved::NoValue => {}
                        // A list parameter inside a list is not flattened by CloudFormation; keep it as is.
                        other => out.push(other),
                    }
                }
                Resolved::List(out)
            }
            other => match scalar_text(other) {
                Some(text) => Resolved::Str(text),
                None => Resolved::Unevaluated(other.clone()),
            },
        })
    }

    /// Evaluates a property of a resource (`path` below `Properties`), `None` when it is absent or `AWS::NoValue`.
    pub fn property(&self, resource: &Value, path: &[&str]) -> Result<Option<Resolved>, String> {
        let Some(mut v) = resource.get("Properties") else {
            return Ok(None);
        };
        for key in path {
            // The templates put intrinsics on leaves only; one around a whole mapping would need evaluating here.
            if let Some((func, _)) = intrinsic(v) {
                return Err(format!(
                    "{func} above {key}: not supported by tests/src/cfn.rs"
                ));
            }
            match v.get(*key) {
                Some(next) => v = next,
                None => return Ok(None),
            }
        }
        match self.eval(v)? {
            Resolved::NoValue => Ok(None),
            other => Ok(Some(other)),
        }
    }

    /// Whether `name` is `<id>.Alias` for an `AWS::Serverless::Function` `<id>` that sets `AutoPublishAlias`.
    fn publishes_alias(&self, name: &str) -> bool {
        name.strip_suffix(".Alias")
            .and_then(|id| self.template.resource(id))
            .is_some_and(|r| {
                r.get("Type").and_then(Value::as_str) == Some("AWS::Serverless::Function")
                    && r.get("Properties")
                        .and_then(|p| p.get("AutoPublishAlias"))
                        .is_some()
            })
    }

    fn boolean(&self, v: &Value) -> Result<bool, String> {
        match self.eval(v)? {
            Resolved::Str(s) if s == "true" => Ok(true),
            Resolved::Str(s) if s == "false" => Ok(false),
            other => Err(format!("expected a condition, got {other:?}")),
        }
    }

    fn args<'v>(&self, func: &str, arg: &'v Value, n: usize) -> Result<&'v [Value], String> {
        match arg.as_sequence() {
            Some(items) if items.len() == n => Ok(items),
            _ => Err(format!("{func} takes a list of {n}")),
        }
    }

    fn call(&self, func: &str, arg: &Value) -> Result<Resolved, String> {
        let bool_text = |b: bool| Resolved::Str(b.to_string());
        match func {
            "Ref" => {
                let name = arg.as_str().ok_or("Ref takes a name")?;
                if name == "AWS::NoValue" {
                    Ok(Resolved::NoValue)
                } else if let Some(p) = self.params.get(name) {
                    Ok(p.clone())
                } else if self.template.section("Parameters").contains_key(name) {
                    Err(format!(
                        "parameter {name} has no value (no Default and no override)"
                    ))
                } else if self.template.section("Resources").contains_key(name) {
                    Ok(Resolved::Resource(name.to_string()))
                } else if name.starts_with("AWS::") {
                    Ok(Resolved::Str(format!("<{name}>")))
                } else if self.publishes_alias(name) {
                    // SAM's `!Ref MyFunction.Alias`: the alias SAM creates for a function with AutoPublishAlias.
                    Ok(Resolved::Resource(name.to_string()))
                } else {
                    Err(format!(
                        "Ref to {name}, which is neither a parameter nor a resource"
                    ))
                }
            }
            "Condition" => Ok(bool_text(
                self.condition(arg.as_str().ok_or("Condition takes a name")?)?,
            )),
            "Fn::If" => {
                let a = self.args(func, arg, 3)?;
                let cond = a[0].as_str().ok_or("Fn::If takes a condition name first")?;
                if self.condition(cond)? {
                    self.eval(&a[1])
                } else {
                    self.eval(&a[2])
                }
            }
            "Fn::Equals" => {
                let a = self.args(func, arg, 2)?;
                Ok(bool_text(self.eval(&a[0])? == self.eval(&a[1])?))
            }
            "Fn::Not" => {
                let a = self.args(func, arg, 1)?;
                Ok(bool_text(!self.boolean(&a[0])?))
            }
            "Fn::And" | "Fn::Or" => {
                let items = arg
                    .as_sequence()
                    .ok_or_else(|| format!("{func} takes a list"))?;
                let mut values = Vec::new();
                for item in items {
                    values.push(self.boolean(item)?);
                }
                Ok(bool_text(if func == "Fn::And" {
                    values.iter().all(|b| *b)
                } else {
                    values.iter().any(|b| *b)
                }))
            }
            "Fn::Contains" => {
                let a = self.args(func, arg, 2)?;
                let Resolved::List(list) = self.eval(&a[0])? else {
                    return Err("Fn::Contains takes a list first".into());
                };
                Ok(bool_text(list.contains(&self.eval(&a[1])?)))
            }
            "Fn::Join" => {
                let a = self.args(func, arg, 2)?;
                let sep = a[0].as_str().ok_or("Fn::Join takes a separator first")?;
                let Resolved::List(items) = self.eval(&a[1])? else {
                    return Err("Fn::Join takes a list second".into());
                };
                let parts: Option<Vec<String>> =
                    items.iter().map(|i| i.as_str().map(String::from)).collect();
                Ok(Resolved::Str(
                    parts.ok_or("Fn::Join of a non-string")?.join(sep),
                ))
            }
            // Kept as written: the tests look at their argument when they need to.
            "Fn::Sub" | "Fn::GetAtt" => Ok(Resolved::Unevaluated(arg.clone())),
            other => Err(format!("{other} is not evaluated by tests/src/cfn.rs")),
        }
    }
}

/// The function name (`Ref`, `Condition` or `Fn::X`) and argument of an intrinsic, in short or long form.
fn intrinsic(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(t) => {
            let tag = t.tag.to_string();
            let name = tag.trim_start_matches('!');
            let func = match name {
                "Ref" | "Condition" => name.to_string(),
                _ => format!("Fn::{name}"),
            };
            Some((func, &t.value))
        }
        Value::Mapping(m) if m.len() == 1 => {
            let (k, arg) = m.iter().next()?;
            let k = k.as_str()?;
            (k == "Ref" || k == "Condition" || k.starts_with("Fn::")).then(|| (k.to_string(), arg))
        }
        _ => None,
    }
}

/// The text of a scalar (a string, number or boolean), as CloudFormation passes scalars on.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Runs the project's cfn-lint (from `make venv`) on one template with warnings as failures, as
/// `deploy/check.sh` does. Returns its output on failure.
pub fn cfn_lint(template: &Path) -> Result<(), String> {
    let bin = crate::workspace_root().join(".venv/bin/cfn-lint");
    if !bin.exists() {
        return Err(format!(
            "{} is missing; run `make venv` (make test does)",
            bin.display()
        ));
    }
    let out = std::process::Command::new(&bin)
        .args(["--non-zero-exit-code", "warning", "--"])
        .arg(template)
        .output()
        .map_err(|e| format!("running {}: {e}", bin.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "cfn-lint {} failed ({}):\n{}{}",
            template.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
