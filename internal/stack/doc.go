// Package stack grows a goroutine's stack early, where it is cheap.
//
// A goroutine starts with a small stack. When a call path needs more, the
// runtime doubles the stack: it copies it and walks every frame on it to
// adjust pointers, so the cost grows with the depth at which it happens.
// grpc-go's NewStream is deep, and the paths that reach it outgrow 8 KiB:
// on every call, the stack grew there, with a few dozen frames to walk.
// [Grow], called first thing on such a goroutine, makes that one growth
// happen with two or three frames on the stack instead.
package stack
