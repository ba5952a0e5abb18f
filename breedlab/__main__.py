from breedlab.cli.app import main

main()
