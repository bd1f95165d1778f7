from storefront_jobs.cli import main

main()
