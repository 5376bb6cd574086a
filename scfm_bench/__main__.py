from scfm_bench.cli import main

main()
