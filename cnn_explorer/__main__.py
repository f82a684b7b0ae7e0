from cnn_explorer.cli import main

raise SystemExit(main())
