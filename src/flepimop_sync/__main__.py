from flepimop_sync.cli import main

main()
