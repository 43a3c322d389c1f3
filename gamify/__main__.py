from gamify.cli import main

main()
