import IntFACommands
IntFA.main()
