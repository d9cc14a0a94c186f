"""The cases of ``benchmarks/vs_original.py``: per original, ocf's spec and overrides at the
original's settings, the adapter that builds the original, and what differs between the two."""

from __future__ import annotations

from benchmarks.vs_original import Case

A = "benchmarks.originals."

# GENESIS-v2 at the SRI code's defaults (z_dim 64: UNet from 64 filters, 4 × 64 decoder channels)
GENESIS_64 = ["model.grouper.latent_dim=64", "model.encoder.filters=64", "model.decoder.channels=[64,64,64,64]"]

CASES: dict[str, Case] = {
    "rotating": Case(
        original="rotating",
        adapter=A + "rotating",
        spec="configs/rotating/4shapes_32_cpu.yaml",
        overrides=[],
        setting="Rotating Features, 4Shapes 32×32 grey, width 16, linear 32, n 8, batch 16",
        differs="same network (98,508 parameters each since ocf took the original's decoder channel plan); "
        "same optimiser and schedule (Adam 1e-3, 500-step warm-up, clip 0.1)",
    ),
    "simone_3x128": Case(
        original="simone",
        adapter=A + "simone",
        spec="configs/simone/moving_sprites_32.yaml",
        overrides=[],
        setting="SIMONe, 32×32, 4 frames, 4 slots, batch 8, 1 transformer layer, decoder 3×128",
        differs="ocf trains with Adam 1e-3 and a 100-step warm-up, the reproduction with Adam 2e-4 (same cost)",
        options={"decoder_hidden": [128, 128, 128]},
    ),
    "simone_5x512": Case(
        original="simone",
        adapter=A + "simone",
        spec="configs/simone/moving_sprites_32.yaml",
        overrides=["model.decoder.hidden=[512,512,512,512,512]"],
        setting="SIMONe as above with the paper's (and the reproduction's) 5×512 per-pixel decoder",
        differs="as simone_3x128",
    ),
    "slot_attention": Case(
        original="slot_attention",
        adapter=A + "slot_attention",
        spec="configs/slot_attention/clevr_128.yaml",
        overrides=[
            "data.dataset=shapes",
            "data.path=runs/vs_original/slot_attention-shapes_128.h5",
            "data.generate={n: 128, seed: 0, options: {resolution: 128}}",
            "data.train_split=train",
            "data.val_split=val",
            "data.test_split=test",
            "train.batch_size=8",
        ],
        setting="Slot Attention, 128×128, 7 slots, 3 iterations, batch 8 (CLEVR6 size, procedural shapes)",
        differs="same architecture (CNN 4×64 5×5, spatial broadcast 8→128 decoder); the port builds a new "
        "LayerNorm in every forward pass; 64 parameters fewer in ocf (not traced)",
        small_data=False,
    ),
    "sri_genesis": Case(
        original="sri",
        adapter=A + "sri",
        spec="configs/sri/genesis_sri.yaml",
        overrides=[*GENESIS_64, "model.prior.lstm_hidden=256"],
        setting="SRI on GENESIS-v2, 32×32, K 4, batch 16, z 64, s 128, L 3, LSTM 256 (the SRI code's defaults)",
        differs="the same prior (single-head relational attention, the scene only starting the LSTMs, two GECOs; "
        "853,824 parameters each); the original renders the ordered slots with a second decoder, so it has "
        "413,828 more parameters (docs/plugins/sri.md); ocf Adam 1e-3, the original 1e-4",
        options={"which": "sri"},
    ),
    "genesis": Case(
        original="sri",
        adapter=A + "sri",
        spec="configs/sri/genesis_baseline.yaml",
        overrides=GENESIS_64,
        setting="GENESIS-v2 alone (the SRI code's, slot-wise independent prior), 32×32, K 4, batch 16, z 64",
        differs="same structure (UNet encoder, IC-SBP, broadcast decoder, one GECO); ocf Adam 1e-3, the original 1e-4",
        options={"which": "genesis"},
    ),
    "setcon": Case(
        original="setcon",
        adapter=A + "setcon",
        spec="configs/setcon/paper_64.yaml",
        overrides=[
            "train.batch_size=32",
            "data.frames=3",
            "model.encoder.channels=[64,128,128,256,64,64,64]",
            "model.encoder.kernel_size=[7,3,3,3,3,3,3]",
            "model.encoder.strides=[2,2,1,2,1,1,1]",
            "model.grouper.num_slots=7",
            "model.grouper.carry=false",
            "model.grouper.slot_init=learned",
        ],
        setting="SetCon (unofficial code), 64×64, slot dim 64, 7 slots, batch 32 × 3 frames, its 'normal' CNN",
        differs="the same encoder (BatchNorm after the first conv), 3-layer DeepSets and transition as the "
        "original; 192 fewer parameters in ocf (not traced; docs/plugins/setcon.md lists the known differences); "
        "set-InfoNCE (ocf) vs NT-Xent (the original)",
    ),
    "air": Case(
        original="air",
        adapter=A + "air",
        spec="configs/sqair/paper_50.yaml",
        overrides=["model.grouper.propagate=false", "data.frames=1", "train.batch_size=64", "train.curriculum=null"],
        setting="AIR vs pyro's example, 50×50, batch 64, 3 steps",
        differs="a different network altogether (docs/plugins/sqair.md): ocf's AIR is SQAIR's grouper without "
        "propagation, 5 IWAE particles (pyro: 1 sample), glimpse 20 (pyro: 28); 2.1 M parameters against pyro's 6.1 M",
    ),
}
