"""The model a run trains: waveform -> filterbank (`diffres.filterbanks`) -> front-end / reducer
(`diffres.frontends`) -> backbone (`backbones`, timm's registry) -> head (`heads`), composed by
`classifier.build_model`; `pretrained` loads and adapts ImageNet weights."""
