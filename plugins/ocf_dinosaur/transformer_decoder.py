"""``dinosaur.transformer_decoder``: the patch features reconstructed in raster order by a
transformer decoder — queries are the target patches shifted right behind a learned
beginning-of-sequence token, self-attention is causal over patches, cross-attention reads the
slots — with the masks taken from the last layer's cross-attention."""

from __future__ import annotations

import torch
from einops import rearrange
from pydantic import Field
from torch import Tensor, nn

from ocf.components import BuildContext, ComponentSpec, Decoder
from ocf.fields import Repeats, Size
from ocf.records import Rendering, State
from ocf_dinosaur.patches import log_masks, patch_grid, patch_rendering, slots_per_frame, target_tokens


def last_layer_with_attention(
    layer: nn.TransformerDecoderLayer, x: Tensor, memory: Tensor, mask: Tensor
) -> tuple[Tensor, Tensor]:
    """One pre-norm ``nn.TransformerDecoderLayer`` (``norm_first=True``) on queries ``x [B n w]``
    and memory ``[B k w]``, computed from its own submodules so that the cross-attention weights
    ``[B n k]`` (averaged over heads, summing to 1 over k) come out too."""
    h = layer.norm1(x)
    x = x + layer.dropout1(layer.self_attn(h, h, h, attn_mask=mask, is_causal=True, need_weights=False)[0])
    h = layer.norm2(x)
    out, weights = layer.multihead_attn(h, memory, memory, need_weights=True, average_attn_weights=True)
    x = x + layer.dropout2(out)
    h = layer.norm3(x)
    x = x + layer.dropout3(layer.linear2(layer.dropout(layer.activation(layer.linear1(h)))))
    return x, weights


class TransformerPatchDecoder(Decoder):
    """DINOSAUR's autoregressive transformer decoder: the target patches, shifted right behind a learned BOS
    token (plus position embeddings), attend causally to earlier patches and across to the slots; the masks
    are the last layer's cross-attention over slots, at patch resolution."""

    name = "dinosaur.transformer_decoder"
    needs = ("latents.objects", "features.tokens", "features.grid")
    provides = ("rendering.recon", "rendering.target", "rendering.mask_logits")

    class Spec(ComponentSpec):
        layers: Repeats = Field(4, le=64, description="transformer decoder layers")
        heads: Size = Field(8, le=1024, description="attention heads (must divide the width)")
        width: Size | None = Field(None, description="model width of the transformer (null: the feature width)")
        ffn_hidden: Size | None = Field(None, description="hidden width of each layer's MLP (null: 4 x width)")
        position_embedding: bool = Field(True, description="add a learned position embedding to the queries")

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        d = ctx.dim("latents.objects")
        c = self.features = ctx.dim("features.tokens")
        grid = ctx.dim("features.grid")
        n, w = grid[0] * grid[1], spec.width or c
        if w % spec.heads:
            raise ValueError(f"width {w} is not divisible by heads {spec.heads}")
        self.bos = nn.Parameter(torch.randn(1, 1, c) * c**-0.5)
        self.pos = nn.Parameter(torch.randn(1, n, w) * w**-0.5) if spec.position_embedding else None
        self.inputs = nn.Sequential(nn.Linear(c, w, bias=False), nn.LayerNorm(w))
        self.memory = nn.Sequential(nn.Linear(d, w, bias=False), nn.LayerNorm(w))
        for seq in (self.inputs, self.memory):
            nn.init.xavier_uniform_(seq[0].weight)
        self.blocks = nn.ModuleList(
            nn.TransformerDecoderLayer(
                w, spec.heads, spec.ffn_hidden or 4 * w, dropout=0.0, batch_first=True, norm_first=True
            )
            for _ in range(spec.layers)
        )
        self.out = nn.Linear(w, c) if w != c else nn.Identity()
        self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(n), persistent=False)

    def decode(self, target: Tensor, slots: Tensor) -> tuple[Tensor, Tensor]:
        """target ``[B n c]`` (teacher forcing), slots ``[B k d]`` → reconstruction ``[B n c]``, whose
        patch i depends on target patches < i only, and the last layer's cross-attention ``[B n k]``."""
        x = torch.cat([self.bos.expand(target.shape[0], -1, -1), target[:, :-1]], dim=1)  # shifted right
        x = self.inputs(x)
        if self.pos is not None:
            x = x + self.pos
        memory = self.memory(slots)
        for block in self.blocks[:-1]:
            x = block(x, memory, tgt_mask=self.causal, tgt_is_causal=True)
        x, weights = last_layer_with_attention(self.blocks[-1], x, memory, self.causal)
        return self.out(x), weights

    def forward(self, state: State) -> Rendering:
        target = target_tokens(state)  # [b t n c]
        b, t, n, _ = target.shape
        grid = patch_grid(state, n)
        slots = slots_per_frame(state, t)
        recon, weights = self.decode(
            rearrange(target, "b t n c -> (b t) n c"), rearrange(slots, "b t k d -> (b t) k d")
        )
        recon = rearrange(recon, "(b t) n c -> b t n c", b=b)
        masks = rearrange(weights, "(b t) n k -> b t k n", b=b)
        return patch_rendering(recon, target, log_masks(masks), grid)
