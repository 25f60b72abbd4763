//! Layer names: the PyTorch module path of each node, read from the metadata that
//! `torch.onnx.export(..., dynamo=True)` writes (`pkg.torch.onnx.name_scopes`, e.g.
//! `['', 'enc1', 'enc1.0', 'conv3d']`: the root, the modules from the outermost in, and last
//! the traced op itself), and the layer list built from them.

use crate::graph_model::LayerInfo;

use super::proto::NodeProto;

const NAME_SCOPES: &str = "pkg.torch.onnx.name_scopes";

/// The module paths a node runs inside, outermost first (empty when the exporter wrote none,
/// or the node belongs to the top-level module itself).
pub fn module_paths(node: &NodeProto) -> Vec<String> {
    let Some(entry) = node.metadata_props.iter().find(|p| p.key == NAME_SCOPES) else {
        return Vec::new();
    };
    let Some(mut scopes) = parse_str_list(&entry.value) else {
        return Vec::new();
    };
    // The last scope names the op, not a module; the first is the root module: "" or, for
    // nodes torch.export made outside any module (symbolic sizes), a placeholder name.
    scopes.pop();
    let mut paths: Vec<String> = Vec::new();
    for scope in scopes.into_iter().skip(1).filter(|s| !s.is_empty()) {
        // Scopes are full paths (`enc1.0`); an exporter writing attribute names only gets them
        // joined to their parent's path.
        let path = match paths.last() {
            Some(parent) if !scope.starts_with(&format!("{parent}.")) => {
                format!("{parent}.{scope}")
            }
            _ => scope,
        };
        paths.push(path);
    }
    paths
}

/// Every module path in the order modules are first entered, each answering with the last
/// node run inside it (a fused node answers to the module it carries in its metadata).
pub fn layer_list<'a>(nodes: impl Iterator<Item = (&'a [String], &'a str)>) -> Vec<LayerInfo> {
    let mut layers: Vec<LayerInfo> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for (node, (paths, op_type)) in nodes.enumerate() {
        for path in paths {
            let info = LayerInfo {
                name: path.clone(),
                op_type: op_type.to_string(),
                node,
            };
            match index.get(path) {
                Some(&i) => layers[i] = info,
                None => {
                    index.insert(path.clone(), layers.len());
                    layers.push(info);
                }
            }
        }
    }
    layers
}

/// A Python list of string literals as `repr` writes it: `['', 'enc', "it's"]`.
fn parse_str_list(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    let mut items = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let Some(quote) = chars.next() else {
            return Some(items);
        };
        if quote != '\'' && quote != '"' {
            return None;
        }
        let mut item = String::new();
        loop {
            match chars.next()? {
                '\\' => item.push(chars.next()?),
                c if c == quote => break,
                c => item.push(c),
            }
        }
        items.push(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::StringStringEntryProto;

    fn node(scopes: &str) -> NodeProto {
        NodeProto {
            metadata_props: vec![StringStringEntryProto {
                key: NAME_SCOPES.into(),
                value: scopes.into(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn module_paths_drop_the_root_and_the_op() {
        assert_eq!(
            module_paths(&node("['', 'enc1', 'enc1.0', 'conv3d']")),
            ["enc1", "enc1.0"]
        );
        assert!(module_paths(&node("['', 'relu']")).is_empty());
        assert_eq!(
            module_paths(&node("['', 'enc', 'conv', 'x']")),
            ["enc", "enc.conv"]
        );
        assert!(module_paths(&NodeProto::default()).is_empty());
        let outside = "['_empty_nn_module_stack_from_metadata_hook', 'sym_size_int_1']";
        assert!(module_paths(&node(outside)).is_empty());
    }

    #[test]
    fn a_block_answers_with_its_last_node() {
        let paths = [
            vec!["enc".to_string(), "enc.conv".to_string()],
            vec!["enc".to_string(), "enc.act".to_string()],
            vec!["head".to_string()],
        ];
        let ops = ["Conv", "Relu", "Conv"];
        let layers = layer_list(paths.iter().map(Vec::as_slice).zip(ops));
        let got: Vec<(&str, usize)> = layers.iter().map(|l| (l.name.as_str(), l.node)).collect();
        assert_eq!(
            got,
            [("enc", 1), ("enc.conv", 0), ("enc.act", 1), ("head", 2)]
        );
    }
}
