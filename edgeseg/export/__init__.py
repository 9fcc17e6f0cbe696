"""Export to TFLite: conversion, embedded metadata, delegate compatibility, parity checks."""
