from dealroom.cli import main

main()
