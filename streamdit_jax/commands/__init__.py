"""The ``streamdit`` subcommands, one module each: ``HELP`` (the subcommand's line in ``streamdit --help``),
``add_arguments(parser)`` and ``run(args, overrides)``, which parses, calls the library and prints what it
returns. ``streamdit_jax.cli`` lists them; nothing else in the library imports them. Their modules import
only the standard library at the top, so that ``streamdit --help`` starts no JAX."""
