//! libtorch's error texts as sentences for a user: the C++ backtrace libtorch appends (some
//! thirty frames that say nothing to someone explaining a model) is dropped, and the errors a
//! user can fix get the fix. Every method's error passes through here on its way back from a
//! plugin.

/// `message` with libtorch's backtrace dropped and, for an op without a derivative, the
/// sentence that says why and what to do.
pub fn plain(message: &str) -> String {
    let sentence = match message.split_once("\nException raised from") {
        Some((sentence, _)) => sentence.trim_end(),
        None => message,
    };
    match missing_derivative(sentence) {
        Some(op) => format!(
            "{} the model's op `{op}` has no derivative in libtorch, so no gradient method \
             can run on this model. A TorchScript file traced under torch.no_grad() records \
             PyTorch's inference fast paths (nn.MultiheadAttention and \
             nn.TransformerEncoderLayer take one): re-export the model with \
             tools/export_model.py, which traces with gradients enabled, or use a method that \
             needs no gradients (occlusion, feature ablation, RISE)",
            sentence
                .split_once("Internal torch error:")
                .map_or("", |(before, _)| before)
                .trim_end(),
        )
        .trim_start()
        .to_string(),
        None => sentence.to_string(),
    }
}

/// The op of libtorch's "derivative for OP is not implemented" (in its two wordings).
fn missing_derivative(sentence: &str) -> Option<String> {
    let (_, rest) = sentence.split_once("derivative for ")?;
    let (op, _) = rest.split_once(" is not implemented")?;
    Some(op.trim_matches(|c| c == '\'' || c == '`').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_derivative_names_the_op_and_the_fix() {
        let raw = "captum.saliency: Internal torch error: derivative for \
                   aten::_transformer_encoder_layer_fwd is not implemented\nException raised \
                   from apply at basic_ops.cpp:20 (most recent call first):\nframe #0: ...";
        let text = plain(raw);
        assert!(
            text.starts_with("captum.saliency: the model's op"),
            "{text}"
        );
        assert!(
            text.contains("`aten::_transformer_encoder_layer_fwd`"),
            "{text}"
        );
        assert!(text.contains("tools/export_model.py"), "{text}");
        assert!(!text.contains("frame #0"), "{text}");
        let quoted = "the derivative for '_native_multi_head_attention' is not implemented.";
        assert!(plain(quoted).contains("`_native_multi_head_attention`"));
    }

    #[test]
    fn other_errors_lose_only_the_backtrace() {
        let raw = "shapes do not match\nException raised from x at y.cpp:1:\nframe #0: z";
        assert_eq!(plain(raw), "shapes do not match");
        assert_eq!(plain("a sentence"), "a sentence");
    }
}
