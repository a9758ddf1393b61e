# shellcheck shell=sh
# Login shells of the restore environment.
PS1='ferry-restore:\w# '
echo "Ferry restore environment: ferry-restore boot (the wizard), ferry-restore --help; the medium is at /run/live/medium"
