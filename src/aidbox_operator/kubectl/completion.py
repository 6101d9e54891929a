"""Shell completion for `kubectl aidbox` (and `kubectl-aidbox`): commands and flags from the
parser itself, so the script cannot drift from it; cluster names from kubectl, when the shell
has one."""

from __future__ import annotations

import argparse

_BASH = """# kubectl aidbox completion (bash): source <(kubectl aidbox completion bash)
_kubectl_aidbox() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" cmd="" word
    for word in "${{COMP_WORDS[@]:1:COMP_CWORD-1}}"; do
        case "$word" in -*) ;; *) cmd="$word"; break ;; esac
    done
    case "$cmd" in
{cases}
        "") COMPREPLY=($(compgen -W "{commands} {flags}" -- "$cur")) ;;
    esac
}}
complete -F _kubectl_aidbox kubectl-aidbox
"""
_CASE = """        {name}) COMPREPLY=($(compgen -W "{flags}{names}" -- "$cur")) ;;"""
_NAMES = """ $(kubectl get aidboxclusters -o name 2>/dev/null | sed 's|.*/||')"""


def _flags(parser: argparse.ArgumentParser) -> list[str]:
    return sorted(f for action in parser._actions for f in action.option_strings)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    subs = _subparsers(parser)
    cases = []
    for name, sub in subs.items():
        takes_name = any(a.dest == "name" for a in sub._actions)
        flags = " ".join(_flags(sub)) if name != "completion" else "bash zsh"
        cases.append(_CASE.format(name=name, flags=flags, names=_NAMES if takes_name else ""))
    text = _BASH.format(
        cases="\n".join(cases), commands=" ".join(subs), flags=" ".join(_flags(parser))
    )
    if shell == "zsh":  # zsh runs bash completion functions through bashcompinit
        text = "autoload -U +X bashcompinit && bashcompinit\n" + text
    return text
