package main

import "github.com/manifold-grpc/manifold"

func main() { manifold.Main() }
