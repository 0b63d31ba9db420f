"""The examples shown at the end of every command's `--help` (and in its man page), in one
table so that each stays next to its siblings; a test parses every line against the command
it names, so an example cannot name an option that does not exist. A command whose docstring
already ends with an `Examples:` section keeps its own."""

from __future__ import annotations

__all__ = ["EXAMPLES", "with_examples"]

EXAMPLES: dict[str, tuple[str, ...]] = {
    "": ("ebpm run localhost:5000/tools/opensnoop:0.1.0 -- --pid 42",
         "ebpm list -o json", "ebpm man push"),
    "add": ("ebpm add opensnoop", "ebpm add opensnoop@^1.2 --dry-run",
            "ebpm add ghcr.io/org/lib@~2.1 --rename lib2", "ebpm add --path ../tool",
            "ebpm add gtool --git https://git.example/org/tools.git --tag v1 --subdir gtool"),
    "build": ("ebpm build", "ebpm build ./opens --json", "ebpm build -q ./opens"),
    "cache": ("ebpm cache dir", "ebpm cache ls", "ebpm cache prune"),
    "cache ls": ("ebpm cache ls", "ebpm cache ls --json"),
    "cache dir": ("ebpm cache dir",),
    "cache prune": ("ebpm cache prune",),
    "export": ("ebpm export localhost:5000/tools/opensnoop:0.1.0 -o package.json",
               "ebpm export ./opens --format object -o opens.bpf.o"),
    "hub": ("ebpm hub refresh localhost:5000", "ebpm hub build -o site/"),
    "hub build": ("ebpm hub build -o site/ --refresh",
                  "ebpm hub build -o site/ --title 'Our tools'"),
    "hub forget": ("ebpm hub forget 'localhost:5000/old/*'",),
    "hub list": ("ebpm hub list", "ebpm hub list --json"),
    "hub refresh": ("ebpm hub refresh localhost:5000",
                    "ebpm hub refresh 'ghcr.io/acme/tools/*' --json"),
    "hub serve": ("ebpm hub serve --port 8080", "ebpm hub serve --no-refresh"),
    "init": ("ebpm init opens", "ebpm init execs --template ringbuf",
             "ebpm init tool --dir ./src/tool"),
    "inspect": ("ebpm inspect localhost:5000/tools/opensnoop:0.1.0",
                "ebpm inspect tools/opensnoop --local --json"),
    "install": ("ebpm install", "ebpm install --frozen --offline", "ebpm install --locked -j 4"),
    "key": ("ebpm key generate --trust 'localhost:5000/**'", "ebpm key list"),
    "key generate": ("ebpm key generate", "ebpm key generate --name ci --password-stdin < pw",
                     "ebpm key generate --trust 'localhost:5000/**'"),
    "key list": ("ebpm key list", "ebpm key list --json"),
    "list": ("ebpm list", "ebpm list --json"),
    "load": ("ebpm load tools.tar", "ebpm load tools.tar --allow-unsigned"),
    "lock": ("ebpm lock", "ebpm lock -C ../app --json"),
    "login": ("ebpm login ghcr.io -u alice --password-stdin < token",
              "ebpm login localhost:5000 -u admin"),
    "logout": ("ebpm logout ghcr.io",),
    "logs": ("ebpm logs 76bd390a7eeb", "ebpm logs 76b --follow --json",
             "ebpm logs 76bd --tail 20"),
    "outdated": ("ebpm outdated", "ebpm outdated --json"),
    "ps": ("ebpm ps", "ebpm ps --json"),
    "pull": ("ebpm pull localhost:5000/tools/opensnoop:0.1.0",
             "ebpm pull tools/opensnoop -o ./opensnoop  # then: ebpm run ./opensnoop",
             "ebpm --offline pull tools/opensnoop"),
    "registry": ("ebpm registry up", "ebpm registry status --json", "ebpm registry down"),
    "registry down": ("ebpm registry down",),
    "registry status": ("ebpm registry status", "ebpm registry status --json"),
    "registry up": ("ebpm registry up", "ebpm registry up --port 5001"),
    "rm": ("ebpm rm localhost:5000/tools/opensnoop:0.1.0", "ebpm rm tools/a tools/b"),
    "remove": ("ebpm remove opensnoop", "ebpm remove lib gtool --dry-run --json"),
    "run": ("sudo ebpm run localhost:5000/tools/opensnoop:0.1.0 -- --pid 42",
            "sudo ebpm run ./opens --duration 5 --json",
            "sudo ebpm run opensnoop -- -h  # the package's own flags",
            "sudo ebpm run --agent /run/ebpm/agent.sock opensnoop  # in the agent, attached"),
    "save": ("ebpm save localhost:5000/tools/opensnoop:0.1.0 -o tools.tar",
             "ebpm save --locked -o deps.tar"),
    "search": ("ebpm search snoop", "ebpm search tcp --limit 5 --json"),
    "serve": ("sudo ebpm serve", "sudo ebpm serve --listen 127.0.0.1:8443 --token-file token"),
    "sign": ("ebpm sign localhost:5000/tools/opensnoop:0.1.0",
             "ebpm sign tools/opensnoop:0.1.0 --key ci --password-stdin < pw",
             "ebpm sign tools/opensnoop:0.1.0 --referrers"),
    "stop": ("ebpm stop 76bd390a7eeb", "ebpm stop 76b 39d"),
    "tags": ("ebpm tags localhost:5000/tools/opensnoop", "ebpm tags tools/opensnoop --json"),
    "trust": ("ebpm trust add 'localhost:5000/**' --key default", "ebpm trust list"),
    "trust add": ("ebpm trust add 'localhost:5000/**' --key default",
                  "ebpm trust add 'ghcr.io/acme/*' --key cosign.pub",
                  "ebpm trust add 'localhost:5000/dev/**' --optional"),
    "trust list": ("ebpm trust list", "ebpm trust list --json"),
    "trust rm": ("ebpm trust rm 'localhost:5000/**'",
                 "ebpm trust rm 'ghcr.io/acme/*' --key cosign.pub"),
    "update": ("ebpm update", "ebpm update opensnoop"),
    "verify": ("ebpm verify localhost:5000/tools/opensnoop:0.1.0",
               "ebpm --offline verify tools/opensnoop:0.1.0 --json"),
}


def with_examples(path: str, help_text: str | None) -> str | None:
    """`help_text` ending in the examples of command `path` (unchanged when it has some)."""
    lines = EXAMPLES.get(path)
    if not lines or (help_text and "Examples:" in help_text):
        return help_text
    import inspect

    body = inspect.cleandoc(help_text or "")
    return body + "\n\n\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)
