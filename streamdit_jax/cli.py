"""The ``streamdit`` command: ``streamdit <subcommand> --help`` for each."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streamdit_jax.choices import DECODERS
from streamdit_jax.config import ConfigError
from streamdit_jax.storage import workpath, write_with


def _add_config_args(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    parser.add_argument(
        "--config",
        default=default,
        required=default is None,
        help="preset name or configs/X.py[:variant]; then --config.<section>.<field>=<value> overrides",
    )


def _load_config(args: argparse.Namespace, overrides: Sequence[str]):
    from streamdit_jax import distributed
    from streamdit_jax.config import load

    distributed.initialize()  # multi-host: before load() starts the JAX backend
    return load(args.config, overrides)


def _print(*values) -> None:
    """Prints from process 0 only."""
    import jax

    if jax.process_index() == 0:
        print(*values, flush=True)


def cmd_summary(args: argparse.Namespace, overrides: Sequence[str]) -> None:
    from streamdit_jax.summary import format_summary

    if args.checkpoint:
        from streamdit_jax.checkpoint import restore_config
        from streamdit_jax.config import AutoencoderConfig, TinyDecoderConfig
        from streamdit_jax.summary import format_autoencoder_summary, format_tiny_decoder_summary

        saved = restore_config(args.checkpoint)
        title = f"checkpoint {args.checkpoint}"
        if isinstance(saved, AutoencoderConfig):
            print(format_autoencoder_summary(saved, title=title))
        elif isinstance(saved, TinyDecoderConfig):
            print(format_tiny_decoder_summary(saved, title=title))
        else:
            print(format_summary(saved, title=title))
        return
    cfg = _load_config(args, overrides)
    print(format_summary(cfg.model, cfg, title=f"StreamDiT {args.config}"))


def _window(text: str | None) -> tuple[int, int, int] | None:
    if text is None:
        return None
    window = tuple(int(v) for v in text.split(","))
    if len(window) != 3:
        raise ConfigError(f"--window {text!r}: expected three sizes F,H,W in tokens, e.g. 16,16,16")
    return window


def cmd_convert(args: argparse.Namespace, overrides: Sequence[str]) -> None:
    from streamdit_jax.checkpoint import save_params
    from streamdit_jax.convert import wan_transformer_params
    from streamdit_jax.summary import format_summary

    if overrides:
        raise ConfigError(f"convert takes no --config overrides, got {list(overrides)}")
    start = time.perf_counter()
    if args.kind == "wan-vae":
        from flax import nnx

        from streamdit_jax.convert import wan_vae
        from streamdit_jax.summary import format_autoencoder_summary

        vae = wan_vae(args.src)
        path = save_params(args.out, vae.cfg, nnx.state(vae))
        print(format_autoencoder_summary(vae.cfg, title=f"converted {args.src}"))
    else:
        model_cfg, params = wan_transformer_params(
            args.src, _window(args.window), param_dtype=args.param_dtype
        )
        path = save_params(args.out, model_cfg, params)
        print(format_summary(model_cfg, title=f"converted {args.src}"))
    print(f"saved {path} in {time.perf_counter() - start:.1f} s")


def cmd_demo(args: argparse.Namespace, overrides: Sequence[str]) -> None:
    """The embedded default run: VAE, latents, StreamDiT, held-out streams and their scores (resumable)."""
    import jax

    from streamdit_jax.demo import DemoPaths, run_demo

    cfg = _load_config(args, overrides)
    paths = DemoPaths(workpath(args.workdir))
    _print(
        f"streamdit demo ({args.config}) in {paths.root} on {jax.device_count()} "
        f"{jax.devices()[0].platform} device(s); finished stages are skipped, interrupted ones resume"
    )
    run_demo(cfg, paths.root, log=_print)
    _print(
        "\n".join(
            [
                "done. Everything is under " + str(paths.root) + ":",
                f"  stream.mp4   the first held-out stream ({cfg.demo.seconds:g} s, "
                f"{cfg.demo.segments - 1} prompt changes); all streams in {paths.streams.name}/",
                "  eval.json    scores of every stream (eval.md: the same as tables; adherence.png, "
                "seams.png, strips.png)",
                "  report.png   training curves, frames per prompt, adherence, summary vs targets",
                f"  autoencoder/ teacher/ student/  checkpoints (stream the student, one pass a chunk: "
                f"streamdit stream --checkpoint {paths.student} --prompt '...')",
            ]
        )
    )


def _with_init(cfg, section: str, init: str | None):
    """``cfg`` with ``--init`` (when given) as ``<section>.init``: the run config records where it started."""
    import dataclasses

    if not init:
        return cfg
    train_cfg = dataclasses.replace(getattr(cfg, section), init=str(init))
    return dataclasses.replace(cfg, **{section: train_cfg})


def _resuming(args: argparse.Namespace) -> bool:
    """``--resume`` of a work dir that holds a checkpoint: the run goes on from it, ``--init`` is not read.
    (From the folder's listing: every process reads the same one before the trainer writes anything.)"""
    from streamdit_jax.checkpoint import saved_steps

    return bool(args.resume and saved_steps(args.workdir))


def cmd_train(args: argparse.Namespace, overrides: Sequence[str]) -> None:
    """Trains the StreamDiT with buffered flow matching on the config's data and mesh."""
    import jax

    from streamdit_jax.data.training import on_the_fly_encoders
    from streamdit_jax.model import initial_params
    from streamdit_jax.sharding import make_mesh
    from streamdit_jax.train import Trainer
    from streamdit_jax.train.flow_task import FlowTask

    cfg = _with_init(_load_config(args, overrides), "train", args.init)
    mesh = make_mesh(cfg.mesh)
    resuming = _resuming(args)
    initial = None
    if cfg.train.init and not resuming:
        initial = initial_params(cfg.train.init, cfg.model, mesh, cfg.mesh.rules)
    start = f"from {cfg.train.init}" if initial is not None else "from a fresh init"
    start = f"resuming {args.workdir}" if resuming else start
    _print(
        f"training {args.config} {start} on {jax.device_count()} {jax.devices()[0].platform} devices in "
        f"{jax.process_count()} processes, mesh {dict(mesh.shape)}; data: {cfg.data.source}"
    )
    vae, text_encoder = on_the_fly_encoders(cfg)
    trainer = Trainer(
        FlowTask(cfg, vae, text_encoder),
        cfg.train,
        cfg.optimizer,
        mesh,
        cfg.mesh.rules,
        args.workdir,
        run_config=cfg,
        seed=cfg.seed,
        resume=args.resume,
        initial=initial,
    )
    with trainer:
        summary = trainer.run()
    held_out = summary["eval"]
    levels = ", ".join(
        f"{k.removeprefix('loss_sigma_')}: {v:.4f}" for k, v in held_out.items() if "sigma" in k
    )
    _print(
        f"step {summary['end_step']}: held-out loss {held_out['loss']:.4f} (by sigma {levels}; EMA weights)"
    )
    _print(f"checkpoint: {workpath(args.workdir)}")


def cmd_train_vae(args: argparse.Namespace, overrides: Sequence[str]) -> None:
    """Trains the preset's autoencoder on shapes clips (a kind without weights, ``patch``, only has its
    latent statistics measured); the checkpoint restores with autoencoder.restore_autoencoder."""
    from streamdit_jax.autoencoder.training import prepare_autoencoder

    cfg = _with_init(_load_config(args, overrides), "vae_train", args.init)
    summary = prepare_autoencoder(cfg, args.workdir, resume=args.resume, resuming=_resuming(args))
    kind = cfg.autoencoder.kind
    if "eval" not in summary:
        _print(f"{kind} autoencoder: nothing to train; latent statistics measured on held-out shapes clips")
    else:
        held_out = summary["eval"]
        _print(
            f"{kind} autoencoder step {summary['end_step']}: held-out PSNR {held_out['psnr']:.2f} dB, L1 "
            f"{held_out['l1']:.4f} ({cfg.vae_train.eval_batches * cfg.vae_train.batch_size} held-out shapes "
            "clips, EMA weights)"
        )
    _print(f"checkpoint: {workpath(args.workdir)}")


def cmd_train_decoder(args: argparse.Namespace, overrides: Sequence[str]) -> None:
    """Distils the tiny streaming decoder from the VAE of ``--vae`` on its own latents of shapes clips."""
    import dataclasses

    import jax

    from streamdit_jax.autoencoder import restore_matching_autoencoder
    from streamdit_jax.autoencoder.decoder_training import DecoderTask
    from streamdit_jax.sharding import make_mesh
    from streamdit_jax.train import Trainer

    cfg = _load_config(args, overrides)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, vae=str(workpath(args.vae))))
    mesh = make_mesh(cfg.mesh)
    task = DecoderTask(cfg, restore_matching_autoencoder(args.vae, cfg.autoencoder))
    _print(
        f"distilling the tiny decoder of {args.vae} (fingerprint {task.model_config.vae_fingerprint}) on "
        f"{jax.device_count()} {jax.devices()[0].platform} devices, mesh {dict(mesh.shape)}"
    )
    trainer = Trainer(
        task,
        cfg.decoder_train,
        cfg.decoder_optimizer,
        mesh,
        cfg.mesh.rules,
        args.workdir,
        run_config=cfg,
        section="decoder_train",
        seed=cfg.seed,
        resume=args.resume,
        frozen=task.frozen(mesh),
    )
    with trainer:
        summary = trainer.run()
    held_out = summary["eval"]
    _print(
        f"tiny decoder step {summary['end_step']}: held-out loss {held_out['loss']:.4f} against the full "
        f"decoder, PSNR {held_out['psnr']:.2f} dB against it and {held_out['psnr_true']:.2f} dB against the "
        f"true frames (the full decoder's: {held_out['psnr_full_true']:.2f} dB; EMA weights)"
    )
    _print(f"checkpoint: {workpath(args.workdir)} (stream with it: --decoder tiny --tiny-decoder DIR)")


def cmd_eval_decoder(args: argparse.Namespace, overrides: Sequence[str]) -> None:
    """The tiny decoder against the full one on held-out shapes clips: PSNR and the detector's scores."""
    import json

    from streamdit_jax.autoencoder import restore_matching_autoencoder
    from streamdit_jax.autoencoder.decoder_training import evaluate_decoder
    from streamdit_jax.autoencoder.tiny import restore_tiny_decoder
    from streamdit_jax.checkpoint import restore_run_config

    cfg = _load_config(args, overrides) if args.config else restore_run_config(args.checkpoint)
    if cfg is None:
        raise ConfigError(f"{args.checkpoint} holds no run config. Fix: pass --config PRESET")
    step = cfg.autoencoder.temporal_compression
    if args.frames is not None and (args.frames < 1 or (args.frames - 1) % step):
        raise ConfigError(f"--frames {args.frames}: the causal VAE takes 1 + {step}k frames. Fix: e.g. 17")
    vae_dir = args.vae or cfg.data.vae
    vae = restore_matching_autoencoder(vae_dir, cfg.autoencoder)
    tiny = restore_tiny_decoder(args.checkpoint, vae, vae_dir)
    clips = args.clips or cfg.decoder_train.eval_batches * cfg.decoder_train.batch_size
    scores = evaluate_decoder(tiny, vae, cfg, clips, args.frames)
    print(f"{clips} held-out clips of {args.frames or cfg.decoder_train.frames} frames:")
    print(
        f"  PSNR: tiny vs full decoder {scores['psnr_tiny_full']:.2f} dB, tiny vs true frames "
        f"{scores['psnr_tiny_true']:.2f} dB, full vs true frames {scores['psnr_full_true']:.2f} dB"
    )
    for name in ("colour", "shape", "position"):
        print(
            f"  detector {name}: true frames {scores[name + '_true']:.1%}, full decoder "
            f"{scores[name + '_full']:.1%}, tiny decoder {scores[name + '_tiny']:.1%} "
            f"({scores[name + '_ratio']:.1%} of the full decoder's); agrees with the full decoder's reading "
            f"{scores[name + '_agreement']:.1%}"
        )
    if args.json:
        workpath(args.json).write_text(json.dumps(scores, indent=2) + "\n")
        print(f"wrote {args.json}")


def cmd_distill(args: argparse.Namespace, overrides: Sequence[str]) -> None:
    """Distils a trained StreamDiT segment-wise into a student that takes one unguided step per chunk."""
    import dataclasses

    import jax

    from streamdit_jax.distill import distill_trainer, schemes
    from streamdit_jax.sharding import make_mesh

    cfg = _load_config(args, overrides)
    mesh = make_mesh(cfg.mesh)
    teacher, student = (dataclasses.astuple(s) for s in schemes(cfg))
    _print(
        f"distilling {args.teacher} on {jax.device_count()} {jax.devices()[0].platform} devices, mesh "
        f"{dict(mesh.shape)}: teacher (K, N, c, s) = {teacher} with CFG {cfg.distill.guidance:g} -> "
        f"student {student} without guidance"
    )
    with distill_trainer(cfg, args.teacher, args.workdir, mesh, resume=args.resume) as trainer:
        summary = trainer.run()
    _print(
        f"step {summary['end_step']}: held-out distillation loss {summary['eval']['loss']:.4f} (EMA weights)"
    )
    _print(
        f"student: {workpath(args.workdir)} (streams with s = 1 and no CFG by default: streamdit "
        f"stream --checkpoint {args.workdir} --prompt '...')"
    )


def cmd_eval_vae(args: argparse.Namespace, overrides: Sequence[str]) -> None:
    """Held-out PSNR of an autoencoder checkpoint on the clips train-vae evaluates on, and the shapes
    detector's scores on its reconstructions beside the true clips'; optionally a PNG strip."""
    from PIL import Image

    from streamdit_jax.autoencoder import restore_autoencoder
    from streamdit_jax.autoencoder.training import DETECTOR_SCORES, evaluate_autoencoder

    cfg = _load_config(args, overrides)
    autoencoder = restore_autoencoder(args.checkpoint, ema=not args.raw)
    clips = args.clips or cfg.vae_train.eval_batches * cfg.vae_train.batch_size
    scores, image = evaluate_autoencoder(autoencoder, cfg, clips, args.frames)
    weights = "raw" if args.raw else "EMA"
    frames = args.frames or cfg.vae_train.clip_frames
    what = f"{clips} clips of {frames} frames ({autoencoder.cfg.kind} autoencoder, {weights} weights)"
    print(f"held-out PSNR over {what}: {scores.pop('all'):.2f} dB")
    for name in DETECTOR_SCORES:
        print(
            f"  detector {name}: reconstructions {scores.pop(name + '_reconstruction'):.1%}, true clips "
            f"{scores.pop(name + '_true'):.1%}"
        )
    for background, score in sorted(scores.items()):
        print(f"  {background} background: {score:.2f} dB")
    if args.png:
        pixels = ((image + 1.0) * 127.5).clip(0, 255).astype("uint8")
        strip = Image.fromarray(pixels)
        write_with(workpath(args.png), lambda f: strip.save(f, format="PNG"))
        print(f"wrote {args.png}: originals above reconstructions, first, middle and last frame")


def _checked_encoders(cfg, vae_dir: str | Path):
    """(autoencoder of ``vae_dir``, text encoder), both checked against the preset."""
    from streamdit_jax.autoencoder import restore_matching_autoencoder
    from streamdit_jax.text import build_encoder

    autoencoder = restore_matching_autoencoder(vae_dir, cfg.autoencoder)
    text_encoder = build_encoder(cfg.text)
    if text_encoder.width != cfg.model.text_width:
        raise ConfigError(
            f"config field 'model.text_width': {cfg.model.text_width}, but the text encoder gives "
            f"{text_encoder.width}. Fix: match model.text_width to the encoder"
        )
    return autoencoder, text_encoder


def cmd_encode(args: argparse.Namespace, overrides: Sequence[str]) -> None:
    """Videos + captions (or shapes scenes) -> ArrayRecord shards of latents and text states."""
    import jax

    from streamdit_jax.data.encode import clip_frames, encode_shapes, encode_videos, read_captions

    cfg = _load_config(args, overrides)
    if (args.shapes is None) == (args.videos is None and args.captions is None):
        raise ConfigError("pass either --videos DIR --captions FILE, or --shapes N (not both)")
    if args.shapes is None and (args.videos is None or args.captions is None):
        raise ConfigError("--videos and --captions go together: the folder and its caption file")
    entries = read_captions(args.captions, args.videos) if args.shapes is None else None
    vae, text_encoder = _checked_encoders(cfg, args.vae)
    what = f"{len(entries)} videos" if entries else f"{args.shapes} shapes scenes (training split)"
    print(
        f"encoding {what} into clips of {clip_frames(cfg)} frames at {cfg.data.fps} fps, "
        f"{cfg.data.resolution[0]}x{cfg.data.resolution[1]} -> {args.out}"
    )
    if entries is None:
        report = encode_shapes(
            cfg, args.shapes, args.out, vae, text_encoder, args.videos_per_shard, args.batch
        )
    else:
        report = encode_videos(
            cfg,
            entries,
            args.out,
            vae,
            text_encoder,
            args.videos_per_shard,
            args.batch,
            jax.process_index(),
            jax.process_count(),
        )
    print(
        f"wrote {report.shards_written} shards ({report.shards_skipped} already complete): "
        f"{report.clips} clips from {report.videos} videos; skipped {len(report.skipped)} videos"
    )
    for item in report.skipped:
        print(f"  skipped {item['video']}: {item['reason']}")


def _stream_config(args: argparse.Namespace, overrides: Sequence[str]):
    """(config, scheme) of a checkpoint for ``stream``/``eval``: read from JSON and checked, nothing
    restored or compiled."""
    from streamdit_jax.flow import Scheme
    from streamdit_jax.stream import StreamModel
    from streamdit_jax.stream.model import check_decoder

    check_decoder(args.decoder, args.tiny_decoder)
    if overrides and not args.config:
        raise ConfigError("--config.* overrides need --config PRESET (the preset the checkpoint belongs to)")
    cfg = StreamModel.load_config(args.checkpoint, _load_config(args, overrides) if args.config else None)
    scheme = Scheme.parse(args.scheme) if args.scheme else Scheme(*cfg.scheme)
    scheme.check_buffer(cfg.buffer.frames)
    return cfg, scheme


def _stream_model(args: argparse.Namespace, cfg):
    """The checkpoint's StreamModel on ``--mesh`` (EMA weights unless ``--raw``)."""
    from streamdit_jax.stream import StreamModel

    return StreamModel.restore(
        args.checkpoint, cfg, args.vae, _parse_mesh(args.mesh), ema=not args.raw, decoder=args.decoder,
        tiny_decoder=args.tiny_decoder,
    )  # fmt: skip


def cmd_stream(args: argparse.Namespace, overrides: Sequence[str]) -> None:
    """Streams a checkpoint to an mp4 (and/or PNG frames): text-to-video, a prompt schedule, or
    video-to-video; every argument is checked before anything is compiled."""
    import contextlib
    import dataclasses

    from tqdm import tqdm

    from streamdit_jax.stream import InputVideo, Streamer, VideoSink
    from streamdit_jax.stream.streamer import read_schedule

    if args.out is None and args.frames_dir is None:
        raise ConfigError("stream needs --out FILE.mp4, --frames-dir DIR, or both")
    if args.input_video is None and args.seconds is None:
        raise ConfigError("--seconds is required for text-to-video (video-to-video defaults to the input)")
    if (args.prompt is None) == (args.prompts is None):
        raise ConfigError("give one of --prompt TEXT or --prompts FILE.jsonl")
    schedule = read_schedule(args.prompts) if args.prompts else []
    cfg, scheme = _stream_config(args, overrides)
    video = InputVideo(args.input_video, cfg) if args.input_video else None
    model = _stream_model(args, cfg)
    streamer = Streamer(
        model, args.prompt or "", scheme=scheme, guidance=args.guidance, seed=args.seed, schedule=schedule,
        input_video=video, strength=args.strength, startup_micro_steps=args.startup_steps,
        startup_guidance=args.startup_guidance,
    )  # fmt: skip
    wanted = None if args.seconds is None else round(args.seconds * streamer.fps)
    mode = "video-to-video" if video else "text-to-video"
    print(
        f"streaming {mode} from {args.checkpoint}: scheme (K, N, c, s) = {dataclasses.astuple(scheme)}, "
        f"cfg {streamer.guidance:g}, {'x'.join(map(str, cfg.data.resolution))} at {streamer.fps} fps",
        flush=True,
    )
    start = time.perf_counter()
    first = None
    frames = iter(streamer)
    with VideoSink(streamer.fps, args.out, args.frames_dir) as sink, contextlib.closing(frames):
        bar = tqdm(total=wanted, unit="frame", dynamic_ncols=True)
        for frame in frames:
            if sink.frames == wanted:
                break
            sink.write(frame)
            bar.update(1)
            if first is None:
                first = time.perf_counter()
            elif sink.frames % 8 == 0:
                bar.set_postfix(fps=f"{(sink.frames - 1) / (time.perf_counter() - first):.1f}")
        bar.close()
    end = time.perf_counter()
    steady = (sink.frames - 1) / (end - first) if first and sink.frames > 1 else float("nan")
    for step, prompt in streamer.prompt_log:
        print(f"  from step {step} (frame {streamer.frames_before(step)}): {prompt!r}")
    print(f"frames written: {sink.frames} ({sink.frames / streamer.fps:.2f} s at {streamer.fps} fps)")
    print(f"forward passes per chunk: {streamer.forward_passes_per_chunk}")
    print(
        f"measured frames per second: {steady:.1f} after the first frame, {sink.frames / (end - start):.1f} "
        f"overall; first frame after {first - start if first else float('nan'):.1f} s (start-up and "
        f"compilation included) on {model.mesh.devices.flat[0].platform}"
    )
    for target in (args.out, args.frames_dir):
        if target:
            print(f"wrote {workpath(target)}")


def _loopback(host: str) -> bool:
    import ipaddress

    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(args: argparse.Namespace, overrides: Sequence[str]) -> None:
    """The live studio: restores the checkpoint, compiles its stream, then serves the page."""
    import dataclasses

    import jax
    from aiohttp import web

    from streamdit_jax.stream import warm_up
    from streamdit_jax.studio import Studio, StudioOptions

    if args.checkpoint is None:
        demo_student = Path("runs/demo/student")
        if not demo_student.is_dir():
            raise ConfigError(
                "no --checkpoint, and runs/demo/student does not exist. Fix: make one with `streamdit demo "
                "--workdir runs/demo` (30 minutes on a 2-core CPU), or pass --checkpoint DIR"
            )
        args.checkpoint = str(demo_student)
    options = StudioOptions(args.max_sessions, args.max_upload_mb, checkpoint=Path(args.checkpoint).name)
    if not _loopback(args.host):
        print(
            f"WARNING: --host {args.host} serves the studio to the network: anyone who can reach this "
            f"machine can use its {jax.devices()[0].platform.upper()} through it, with no login.",
            file=sys.stderr,
        )
    cfg, scheme = _stream_config(args, overrides)
    model = _stream_model(args, cfg)
    print(f"compiling the stream of {args.checkpoint}, scheme {dataclasses.astuple(scheme)} ...", flush=True)
    seconds = warm_up(model, scheme, guidances=(cfg.rollout.guidance,))
    print(f"compiled in {seconds:.1f} s", flush=True)
    studio = Studio(model, options)
    print(
        f"streamdit studio: http://{args.host}:{args.port}/ ({args.max_sessions} sessions at most)",
        flush=True,
    )
    web.run_app(studio.app, host=args.host, port=args.port, print=None)


def cmd_eval(args: argparse.Namespace, overrides: Sequence[str]) -> None:
    """Streams the held-out prompt schedules (or --prompts) from a checkpoint and scores them."""
    from streamdit_jax.eval.run import heldout_prompts, prompts_from_schedule, run_eval
    from streamdit_jax.stream.streamer import read_schedule

    if args.prompts:
        prompts = [prompts_from_schedule(Path(args.prompts).stem, read_schedule(args.prompts))]
    else:
        if args.segments < 1:
            raise ConfigError(
                f"--segments {args.segments}: a schedule needs at least one prompt. Fix: e.g. 3"
            )
        prompts = heldout_prompts(args.count, args.seconds, segments=args.segments)
    cfg, scheme = _stream_config(args, overrides)
    model = _stream_model(args, cfg)
    out = workpath(args.out) if args.out else workpath(args.checkpoint) / "eval"
    print(
        f"evaluating {args.checkpoint} ({model.decoder} decoder): {len(prompts)} streams of "
        f"{args.seconds:g} s -> {out}",
        flush=True,
    )
    videos = out / "streams" if args.videos else None
    startup = (args.startup_steps, args.startup_guidance)
    report = run_eval(
        model,
        prompts,
        args.seconds,
        out,
        scheme,
        args.guidance,
        args.seed,
        videos,
        progress=True,
        startup=startup,
    )
    for key, value in report["summary"].items():
        print(f"  {key}: {value:.3f}")
    print(f"wrote {out / 'eval.json'}, {out / 'eval.md'}, adherence.png, seams.png, strips.png")
    if videos:
        print(f"wrote the streams to {videos}")


def cmd_bench(args: argparse.Namespace, overrides: Sequence[str]) -> None:
    """Times the rollout, the training step or the PyTorch peer; prints the JSON and docs/benchmarks.md
    rows, and writes the JSON to --json."""
    import json
    import shlex

    from streamdit_jax.bench import TABLE_HEADER, table_rows
    from streamdit_jax.bench.common import with_resolution
    from streamdit_jax.flow import Scheme

    cfg = with_resolution(_load_config(args, overrides), args.resolution)
    modes = tuple(m.strip() for m in args.modes.split(",")) if args.modes else None
    if args.kind == "rollout":
        from streamdit_jax.bench import bench_rollout
        from streamdit_jax.bench.rollout import MODES

        scheme = Scheme.parse(args.scheme) if args.scheme else None
        result = bench_rollout(
            cfg,
            scheme,
            args.guidance,
            args.steps,
            args.warmup,
            modes or MODES,
            args.peak_tflops,
            args.decoder,
        )
    elif args.kind == "train":
        from streamdit_jax.bench import bench_train

        result = bench_train(cfg, args.steps, args.warmup, args.peak_tflops)
    else:
        from streamdit_jax.bench.peer import PHASES, bench_peer

        result = bench_peer(cfg, args.steps, args.warmup, compile_model=args.compile, phases=modes or PHASES)
    text = json.dumps(result, indent=2)
    if args.json:
        target = workpath(args.json)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text + "\n")
    _print(text)
    ran = Path(sys.argv[0]).name in ("streamdit", "cli.py")  # else called in-process (tests)
    command = "streamdit " + shlex.join(sys.argv[1:] if ran else ["bench"])
    _print("\n" + TABLE_HEADER + "\n" + "\n".join(table_rows(result, args.config, command)))


def _parse_mesh(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 4:
        raise ConfigError(f"--mesh {text!r}: give four sizes (data, fsdp, context, model), e.g. 1,8,1,1")
    return shape


def cmd_plan(args: argparse.Namespace, overrides: Sequence[str]) -> None:
    """Per-device memory of a preset's training step on a mesh, from the compiled step (nothing is
    allocated): does it fit, the largest batch that does, and the smallest mesh that fits."""
    import contextlib
    import json
    import math

    import jax

    from streamdit_jax.train import plan

    plan.check_budget(args.device_memory)
    if args.devices is not None:
        if args.devices < 1:
            raise ConfigError(f"--devices {args.devices}: give the number of devices to plan for, e.g. 8")
        # On a CPU host: fake devices, SEARCH_FACTOR times more for the search of a mesh that fits. Once
        # the backend is up (in-process use), the devices present must do.
        with contextlib.suppress(RuntimeError):
            jax.config.update("jax_num_cpu_devices", args.devices * plan.SEARCH_FACTOR)
    cfg = _load_config(args, overrides)
    if args.mesh:
        cfg = plan.with_mesh(cfg, _parse_mesh(args.mesh))
    present = jax.devices()
    count = args.devices or (len(present) if -1 in cfg.mesh.shape else math.prod(cfg.mesh.shape))
    if count > len(present):
        raise ConfigError(
            f"--devices {count}: only {len(present)} {present[0].platform} devices are present. Fix: plan "
            "on a CPU host in a fresh process (JAX_PLATFORMS=cpu streamdit plan ... --devices N)"
        )
    devices = present[:count]
    shape = cfg.mesh.resolved_shape(count)
    cfg = plan.with_mesh(cfg, shape)
    budget_gib = args.device_memory
    if budget_gib is None and (limit := plan.device_memory_bytes(devices[0])):
        budget_gib = limit / plan.GIB
    budget = None if budget_gib is None else int(budget_gib * plan.GIB)
    print(
        f"planning {args.config}: mesh {shape} (data, fsdp, context, model) on {count} "
        f"{devices[0].platform} devices, global batch {cfg.train.batch_size} (grad_accum "
        f"{cfg.train.grad_accum}), remat {cfg.model.remat}, dtype {cfg.model.dtype} ...",
        flush=True,
    )
    memory = plan.step_memory(cfg, devices)
    print(plan.format_memory(memory))
    report = {"config": args.config, "platform": devices[0].platform, "step": memory.to_dict()}
    if budget is None:
        print("give --device-memory GiB to check a fit (this device does not report its memory)")
    else:
        fits = memory.total <= budget
        report |= {"device_memory_gib": budget_gib, "fits": fits}
        print(f"{'fits' if fits else 'does NOT fit'} in {budget_gib:g} GiB per device")
        if fits or args.largest_batch:
            largest = plan.largest_batch(cfg, budget, devices)
            report["largest_batch"] = largest and largest.to_dict()
            print(
                f"largest global batch that fits on {shape}: "
                + (f"{largest.batch_size} ({plan.gib(largest.total)} per device)" if largest else "none")
            )
        if not fits:
            searched = present[: count * plan.SEARCH_FACTOR]
            smallest = plan.smallest_fitting_mesh(cfg, budget, searched)
            report["smallest_mesh"] = smallest and smallest.to_dict()
            batch = cfg.train.batch_size
            if smallest is None:
                remat = "" if cfg.model.remat == "full" else "remat (--config.model.remat=full), "
                print(
                    f"no mesh of up to {len(searched)} devices (the fsdp axis grown) fits batch {batch}: try "
                    f"{remat}a smaller batch (--largest-batch), gradient accumulation, the mesh's context "
                    "axis, or fused attention (model.attention=cudnn on NVIDIA GPUs: plan it there)"
                )
            else:
                print(
                    f"smallest mesh that fits batch {batch}: {smallest.mesh} on {math.prod(smallest.mesh)} "
                    f"devices, {plan.gib(smallest.total)} per device"
                )
    if args.json:
        workpath(args.json).write_text(json.dumps(report, indent=2) + "\n")


class _DeprecatedAlias(argparse.Action):
    """Stores the value; an option string in ``old`` prints a one-line note naming its new name."""

    def __init__(self, *args: Any, old: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.old = tuple(old)

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
        if option_string in self.old:
            print(f"note: {option_string} is deprecated and goes in the next release; use "
                  f"{self.option_strings[0]}", file=sys.stderr)  # fmt: skip
        setattr(namespace, self.dest, values)


def _add_guidance_arg(p: argparse.ArgumentParser, help: str) -> None:
    """``--guidance`` (classifier-free guidance scale); ``--cfg`` its deprecated alias for one release."""
    p.add_argument("--guidance", "--cfg", type=float, action=_DeprecatedAlias, old=("--cfg",), help=help)


def _add_stream_args(p: argparse.ArgumentParser) -> None:
    """The checkpoint and rollout arguments that ``stream`` and ``eval`` share."""
    p.add_argument("--checkpoint", required=True, help="a train or distill work dir, or any DiT checkpoint")
    p.add_argument("--config", help="the checkpoint's preset (default: the run config saved with it)")
    p.add_argument("--scheme", help="K,N,c,s (default: the config's buffer and rollout)")
    _add_guidance_arg(p, "guidance scale (default: rollout.guidance; 1 = off)")
    p.add_argument(
        "--startup-steps",
        type=int,
        help="micro-steps per chunk position of the first buffer's denoise (default: "
        "rollout.startup_micro_steps, else the scheme's s)",
    )
    p.add_argument(
        "--startup-guidance",
        type=float,
        help="the first buffer's guidance scale (default: rollout.startup_guidance, else --guidance)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vae", help="VAE checkpoint (default: the config's data.vae)")
    p.add_argument("--mesh", default="1,1,1,1", help="data,fsdp,context,model devices (data = fsdp = 1)")
    p.add_argument("--raw", action="store_true", help="the raw weights instead of the EMA")
    _add_decoder_args(p)


def _add_decoder_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--decoder",
        default="full",
        choices=DECODERS,
        help="what makes the frames: the VAE's decoder, or the tiny one distilled from it",
    )
    p.add_argument("--tiny-decoder", help="with --decoder tiny: a `streamdit train-decoder` work dir")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamdit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("summary", help="parameter count and per-module table of a preset or checkpoint")
    _add_config_args(p, default="small")
    p.add_argument("--checkpoint", help="summarise a saved checkpoint's model instead of a preset")
    p.set_defaults(fn=cmd_summary)

    p = sub.add_parser("convert", help="convert public weights into a streamdit checkpoint")
    p.add_argument("kind", choices=["wan-transformer", "wan-vae"], help="what to convert")
    p.add_argument("--src", required=True, help="diffusers WanTransformer3DModel / AutoencoderKLWan folder")
    p.add_argument("--out", required=True, help="output checkpoint directory")
    p.add_argument("--window", help="transformer attention window F,H,W in tokens (default: full, as Wan)")
    p.add_argument("--param-dtype", default="float32", choices=["float32", "bfloat16"], help="transformer")
    p.set_defaults(fn=cmd_convert)

    p = sub.add_parser("train", help="train the StreamDiT with buffered flow matching (mixed schemes)")
    _add_config_args(p)
    p.add_argument("--workdir", required=True, help="checkpoints, TensorBoard, metrics.jsonl")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --workdir")
    p.add_argument(
        "--init", help="start from this transformer checkpoint's weights (e.g. a converted Wan 2.1)"
    )
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("train-vae", help="train the preset's video VAE on the shapes data")
    _add_config_args(p)
    p.add_argument("--workdir", required=True, help="where checkpoints and TensorBoard logs go")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --workdir")
    p.add_argument("--init", help="start from this VAE checkpoint's weights (e.g. a converted Wan VAE)")
    p.set_defaults(fn=cmd_train_vae)

    p = sub.add_parser("eval-vae", help="held-out PSNR of a VAE checkpoint (and a reconstruction strip)")
    _add_config_args(p)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--clips", type=int, default=0, help="default: the clips train-vae evaluates on")
    p.add_argument("--frames", type=int, help="clip length (1 + 4k; default: the training clips')")
    p.add_argument("--png", help="write originals and reconstructions to this PNG")
    p.add_argument("--raw", action="store_true", help="the raw weights instead of the EMA")
    p.set_defaults(fn=cmd_eval_vae)

    p = sub.add_parser("train-decoder", help="distil the tiny streaming decoder from a VAE's decoder")
    _add_config_args(p)
    p.add_argument("--vae", required=True, help="the VAE checkpoint to imitate (streamdit train-vae)")
    p.add_argument("--workdir", required=True, help="where checkpoints and TensorBoard logs go")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --workdir")
    p.set_defaults(fn=cmd_train_decoder)

    p = sub.add_parser("eval-decoder", help="a tiny decoder against the full one: PSNR, detector scores")
    p.add_argument("--checkpoint", required=True, help="a `streamdit train-decoder` work dir")
    p.add_argument("--config", help="the preset (default: the run config saved with the checkpoint)")
    p.add_argument("--vae", help="the VAE checkpoint (default: the one it was trained from)")
    p.add_argument("--clips", type=int, default=0, help="default: the clips train-decoder evaluates on")
    p.add_argument("--frames", type=int, help="clip length (1 + 4k; default: decoder_train.frames)")
    p.add_argument("--json", help="also write the scores here")
    p.set_defaults(fn=cmd_eval_decoder)

    p = sub.add_parser("encode", help="videos + captions -> ArrayRecord shards of latents and text states")
    _add_config_args(p)
    p.add_argument("--videos", help="folder the caption file's video paths are relative to")
    p.add_argument("--captions", help='jsonl of {"video": path, "caption": text}')
    p.add_argument("--shapes", type=int, help="instead of videos: this many shapes training scenes")
    p.add_argument(
        "--vae", required=True, help="the preset's VAE checkpoint (streamdit train-vae or convert)"
    )
    p.add_argument("--out", required=True, help="output folder of shards (rerun to resume)")
    p.add_argument("--videos-per-shard", type=int, default=64)
    p.add_argument("--batch", type=int, default=4, help="clips per VAE call")
    p.set_defaults(fn=cmd_encode)

    p = sub.add_parser("stream", help="stream a checkpoint to an mp4: prompts, schedules, video-to-video")
    _add_stream_args(p)
    p.add_argument("--prompt", help="the prompt")
    p.add_argument("--prompts", help='jsonl of {"at": seconds, "prompt": text}: a prompt schedule')
    p.add_argument("--seconds", type=float, help="length of the video (video-to-video: default the input's)")
    p.add_argument("--out", help="mp4 to write (H.264)")
    p.add_argument("--frames-dir", help="also (or instead) write every frame as a PNG here")
    p.add_argument("--input-video", help="video-to-video (SDEdit): the video to restyle")
    p.add_argument("--strength", type=float, default=0.7, help="video-to-video noise level in (0, 1]")
    p.set_defaults(fn=cmd_stream)

    p = sub.add_parser("eval", help="stream held-out prompt schedules and score them (shapes detector)")
    _add_stream_args(p)
    p.add_argument(
        "--prompts", help='one schedule to score instead: jsonl of {"at": seconds, "prompt": text}'
    )
    p.add_argument("--seconds", type=float, default=60.0, help="length of each stream")
    p.add_argument("--count", type=int, default=4, help="held-out schedules to stream")
    p.add_argument(
        "--segments", type=int, default=3, help="prompts per held-out schedule (the demo streams 4)"
    )
    p.add_argument("--out", help="output folder (default: CHECKPOINT/eval)")
    p.add_argument("--videos", action="store_true", help="also write every stream to OUT/streams/NAME.mp4")
    p.set_defaults(fn=cmd_eval)

    p = sub.add_parser("serve", help="the live studio: stream a checkpoint in the browser, steer it live")
    p.add_argument("--checkpoint", help="a train or distill work dir (default: runs/demo/student)")
    p.add_argument("--config", help="the checkpoint's preset (default: the run config saved with it)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: the whole network)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--max-sessions", type=int, default=2, help="streams at once; later tabs wait in a queue")
    p.add_argument("--max-upload-mb", type=float, default=32.0, help="largest clip for video-to-video")
    p.add_argument("--vae", help="VAE checkpoint (default: the config's data.vae)")
    p.add_argument("--mesh", default="1,1,1,1", help="data,fsdp,context,model devices (data = fsdp = 1)")
    p.add_argument("--raw", action="store_true", help="the raw weights instead of the EMA")
    _add_decoder_args(p)
    p.set_defaults(fn=cmd_serve, scheme=None)

    p = sub.add_parser("distill", help="segment-wise distillation: one unguided step per emitted chunk")
    _add_config_args(p)
    p.add_argument("--teacher", required=True, help="a `streamdit train` checkpoint directory")
    p.add_argument("--workdir", required=True, help="where the student's checkpoints go")
    p.add_argument("--resume", action="store_true", help="continue the student in --workdir")
    p.set_defaults(fn=cmd_distill)

    p = sub.add_parser("bench", help="benchmarks: the streaming rollout, the training step, the PyTorch peer")
    p.add_argument("kind", choices=["rollout", "train", "peer"])
    _add_config_args(p)
    p.add_argument("--resolution", help="video HEIGHTxWIDTH (default: the preset's data.resolution)")
    p.add_argument("--scheme", help="rollout: K,N,c,s (default: the config's buffer and rollout)")
    _add_guidance_arg(p, "rollout: guidance scale (default: rollout.guidance)")
    p.add_argument(
        "--modes", help="rollout: latents,decoded (default both); peer: forward,train (default both)"
    )
    p.add_argument("--steps", type=int, default=30, help="timed steps after the warm-up")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation included)")
    p.add_argument("--peak-tflops", type=float, help="peak TFLOP/s per device for MFU (default: table)")
    p.add_argument(
        "--compile", action=argparse.BooleanOptionalAction, help="peer: torch.compile (default: on GPUs)"
    )
    p.add_argument(
        "--decoder", default="full", choices=DECODERS, help="rollout: what decodes (random weights)"
    )
    p.add_argument("--json", help="also write the result here")
    p.set_defaults(fn=cmd_bench)

    p = sub.add_parser("plan", help="will a preset's training step fit? Per-device memory, largest batch")
    _add_config_args(p)
    p.add_argument("--mesh", help="D,F,C,M: data, fsdp, context, model sizes (default: the config's mesh)")
    p.add_argument("--devices", type=int, help="devices to plan for (a CPU host fakes them; default: all)")
    p.add_argument("--device-memory", type=float, help="GiB per device (default: what the device reports)")
    p.add_argument(
        "--largest-batch",
        action="store_true",
        help="also search the largest batch when the config's does not fit",
    )
    p.add_argument("--json", help="also write the plan here")
    p.set_defaults(fn=cmd_plan)

    p = sub.add_parser("demo", help="train the VAE and StreamDiT on shapes, stream, evaluate (resumable)")
    _add_config_args(p, default="small")
    p.add_argument("--workdir", default="runs/demo")
    p.set_defaults(fn=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    overrides = [a for a in rest if a.startswith("--config.")]
    unknown = [a for a in rest if not a.startswith("--config.")]
    if unknown:
        spaced = [a for a in overrides if "=" not in a]
        hint = f" (write overrides as {spaced[0]}=VALUE)" if spaced else ""
        parser.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")
    from streamdit_jax.convert import ConversionError
    from streamdit_jax.data import DataError
    from streamdit_jax.flow import SchemeError
    from streamdit_jax.train import NonFiniteLoss

    try:
        args.fn(args, overrides)
    except (
        ConfigError,
        ConversionError,
        DataError,
        SchemeError,
        NonFiniteLoss,
        FileNotFoundError,
        FileExistsError,
    ) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
