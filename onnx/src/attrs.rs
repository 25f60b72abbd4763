//! A node's attributes, read with the ONNX defaults and checked for their type, so that a bad
//! attribute fails while the model loads.

use anyhow::{anyhow, bail, Result};

use super::proto::{attribute_type as at, AttributeProto, NodeProto, TensorProto};

pub struct Attrs<'a> {
    node: &'a NodeProto,
}

impl<'a> Attrs<'a> {
    pub fn new(node: &'a NodeProto) -> Self {
        Attrs { node }
    }

    pub fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn typed(&self, name: &str, want: i32, what: &str) -> Result<Option<&'a AttributeProto>> {
        match self.get(name) {
            Some(a) if a.r#type != want && a.r#type != 0 => {
                bail!(
                    "the attribute `{name}` should be {what} (its type code is {})",
                    a.r#type
                )
            }
            other => Ok(other),
        }
    }

    pub fn int(&self, name: &str, default: i64) -> Result<i64> {
        Ok(self
            .typed(name, at::INT, "an integer")?
            .map_or(default, |a| a.i))
    }

    pub fn float(&self, name: &str, default: f32) -> Result<f32> {
        Ok(self
            .typed(name, at::FLOAT, "a float")?
            .map_or(default, |a| a.f))
    }

    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        Ok(self
            .typed(name, at::INTS, "a list of integers")?
            .map(|a| a.ints.clone()))
    }

    pub fn floats(&self, name: &str) -> Result<Option<Vec<f32>>> {
        Ok(self
            .typed(name, at::FLOATS, "a list of floats")?
            .map(|a| a.floats.clone()))
    }

    pub fn string(&self, name: &str, default: &str) -> Result<String> {
        match self.typed(name, at::STRING, "a string")? {
            Some(a) => String::from_utf8(a.s.clone())
                .map_err(|_| anyhow!("the attribute `{name}` is not valid UTF-8")),
            None => Ok(default.to_string()),
        }
    }

    pub fn tensor(&self, name: &str) -> Result<Option<&'a TensorProto>> {
        Ok(self
            .typed(name, at::TENSOR, "a tensor")?
            .and_then(|a| a.t.as_ref()))
    }

    /// A string attribute that must be one of `allowed`.
    pub fn choice(&self, name: &str, default: &str, allowed: &[&str]) -> Result<String> {
        let value = self.string(name, default)?;
        if !allowed.contains(&value.as_str()) {
            bail!(
                "the attribute `{name}` is `{value}`; esegeta supports {}",
                allowed
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Ok(value)
    }
}
