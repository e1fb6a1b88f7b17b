// Train module
